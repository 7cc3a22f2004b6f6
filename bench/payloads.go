package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math/rand/v2"
	"sync"

	"github.com/receiptd/receiptd/bench/benchdata"
)

// The deliveries themselves (a benchdata.Universe: Reewild payloads shaped
// like the seed's, each a pure function of the seed and its index) come
// from bench/benchdata, which the repository's benchmarks use too.

// A sequence hands out the deliveries of a universe in a shuffled order,
// with a share of exact re-deliveries of ones handed out before: every
// index once, in the order of a random permutation, and in between, with
// probability dup, a uniformly chosen earlier one again. Safe for
// concurrent use.
type sequence struct {
	u    benchdata.Universe
	dup  float64
	mu   sync.Mutex
	rng  *rand.Rand
	perm []uint32
	next int // distinct deliveries handed out
	sent int // deliveries handed out, re-deliveries included
	dups int
}

func newSequence(u benchdata.Universe, dup float64, seed uint64) *sequence {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	n := u.Size()
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return &sequence{u: u, dup: dup, rng: rng, perm: perm}
}

// take returns the next delivery's index, whether it is a re-delivery, and
// false once every distinct delivery has been handed out.
func (s *sequence) take() (k int, dup bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next > 0 && s.rng.Float64() < s.dup {
		s.sent++
		s.dups++
		return int(s.perm[s.rng.IntN(s.next)]), true, true
	}
	if s.next == len(s.perm) {
		return 0, false, false
	}
	k = int(s.perm[s.next])
	s.next++
	s.sent++
	return k, false, true
}

// counts returns the distinct and total deliveries handed out so far.
func (s *sequence) counts() (distinct, total, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next, s.sent, s.dups
}

// signer computes X-Reewild-Signature values with pooled HMACs.
type signer struct{ pool sync.Pool }

func newSigner(secret []byte) *signer {
	s := &signer{}
	s.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return s
}

func (s *signer) sign(body []byte) string {
	m := s.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	var sum [sha256.Size]byte
	out := hex.EncodeToString(m.Sum(sum[:0]))
	s.pool.Put(m)
	return out
}
