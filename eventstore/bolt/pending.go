package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// The lazy index of schema 3.
//
// Writing a stream's index entry with every append dirties a random leaf of
// the index (and its branch pages) per append: with streams that are not
// appended in any order (a provider's deliveries, shuffled by its retries
// and by many receipts at once), three quarters of the committer's work
// went there (BenchmarkAppendLoaded). So the entries of the events appended
// since the file's indexed position P are kept in memory, in nParts
// partitions by the first bits of h, and each commit also writes (folds)
// the entries of the next few partitions into the index, in key order: the
// index is swept from one end to the other in cycles, and one cycle writes
// each of its leaves at most once, for every entry that arrived on it
// since the previous cycle.
//
// The pace: a commit that appends n entries folds k partitions, k chosen
// so that a cycle lasts while about half of Options.IndexBufferBytes of
// entries arrive (see foldParts). The commit that folds the last partition
// of a cycle also writes P: the head as the cycle began, since every event
// up to it was in memory or in the index then, and has been folded since.
//
// Entries go into memory only once their commit is durable, and come out
// of it only once the commit that folded them is: a reader that takes a
// stream's entries from memory before it begins its read transaction
// misses none (ReadStream). A stream's entries in memory are always the
// latest of its revisions, contiguous: the events of a stream after P are,
// and a fold takes all of a stream's entries at once. So a stream's
// current revision is its last entry in memory if it has one, else its
// last key in the index.
//
// After a crash (or a commit that failed, which may or may not have
// reached the file) the entries are read again from the events after P:
// at most about two cycles of them. An entry folded twice is written twice
// with the same value.
const (
	// nParts is the number of partitions of the hash space.
	nParts = 1024
	// pendingStreamBytes and pendingEntryBytes estimate the memory of a
	// stream held in memory and of each of its entries.
	pendingStreamBytes = 96
	pendingEntryBytes  = 8
	// defaultIndexBufferBytes is the default of Options.IndexBufferBytes.
	defaultIndexBufferBytes = 16 << 20
	// closeFoldParts is the number of transactions Close folds the
	// entries in.
	closeFoldParts = 16
)

// partOf returns the partition of h: its first 10 bits.
func partOf(h streamHash) int { return int(binary.BigEndian.Uint16(h[:2]) >> 6) }

// pendingStream is the entries of one stream held in memory: revisions
// first, first+1, … at positions pos.
type pendingStream struct {
	first uint64
	pos   []uint64
}

func (p *pendingStream) last() uint64 { return p.first + uint64(len(p.pos)) - 1 }

// pendingIndex is the index entries held in memory.
type pendingIndex struct {
	// mu guards parts and the counts. The committer is the only goroutine
	// that changes them: it reads without the lock and writes with it;
	// readers (ReadStream) take it to copy a stream's entries.
	mu      sync.Mutex
	parts   [nParts]map[streamHash]*pendingStream
	streams int
	entries int

	// Committer-only: the partition the sweep folds next, the head as the
	// cycle began (cycleHead), and the file's indexed position.
	next      int
	cycleHead uint64
	indexed   uint64
}

// get returns the entries of h (committer only).
func (p *pendingIndex) get(h streamHash) *pendingStream { return p.parts[partOf(h)][h] }

// bytes estimates the memory the entries take.
func (p *pendingIndex) bytes() int {
	return p.streams*pendingStreamBytes + p.entries*pendingEntryBytes
}

// snapshot returns a copy of the entries of h with revisions from from
// on, and the first revision it holds (ok false when it holds none of h).
func (p *pendingIndex) snapshot(h streamHash, from uint64) (first uint64, pos []uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.parts[partOf(h)][h]
	if ps == nil {
		return 0, nil, false
	}
	skip := uint64(0)
	if from > ps.first {
		skip = min(from-ps.first, uint64(len(ps.pos)))
	}
	return ps.first, slices.Clone(ps.pos[skip:]), true
}

// add records, after their commit, the entries of one append: revisions
// first… of the stream h, at positions pos (committer only, under mu).
func (p *pendingIndex) add(h streamHash, first uint64, pos []uint64) error {
	part := &p.parts[partOf(h)]
	if *part == nil {
		*part = map[streamHash]*pendingStream{}
	}
	ps := (*part)[h]
	if ps == nil {
		(*part)[h] = &pendingStream{first: first, pos: slices.Clone(pos)}
		p.streams++
		p.entries += len(pos)
		return nil
	}
	if first != ps.last()+1 {
		return fmt.Errorf("%w: revision %d of a stream whose last in memory is %d", errCorrupt, first, ps.last())
	}
	ps.pos = append(ps.pos, pos...)
	p.entries += len(pos)
	return nil
}

// reset drops every entry (under mu).
func (p *pendingIndex) reset() {
	clear(p.parts[:])
	p.streams, p.entries = 0, 0
}

// load rebuilds the entries from the file tx reads: the events after its
// indexed position, whose head is head. The sweep starts a new cycle.
func (p *pendingIndex) load(tx *bbolt.Tx, b buckets, key *[streamKeyLen]byte, head uint64, noAdvice bool) error {
	fm, err := readMeta(tx.Bucket(bucketMeta))
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset()
	p.indexed, p.cycleHead, p.next = fm.indexed, head, 0
	if fm.indexed > head {
		return fmt.Errorf("%w: indexed up to %d, head at %d", errCorrupt, fm.indexed, head)
	}
	scan := newScanRange(tx, noAdvice)
	defer scan.done()
	c := b.events.Cursor()
	var one [1]uint64
	for k, v := c.Seek(be64(fm.indexed + 1)); k != nil; k, v = c.Next() {
		scan.saw(v)
		if len(k) != 8 {
			return fmt.Errorf("%w: event key of %d bytes", errCorrupt, len(k))
		}
		pos := binary.BigEndian.Uint64(k)
		stream, rev, err := recordStream(pos, v)
		if err != nil {
			return err
		}
		one[0] = pos
		if err := p.add(hashStream(key, string(stream)), rev, one[:]); err != nil {
			return fmt.Errorf("event at position %d: %w", pos, err)
		}
	}
	return nil
}

// foldParts returns how many partitions a commit that appends n entries
// folds, for a buffer of maxBytes: enough that a cycle ends while about
// half of maxBytes of entries arrive, all of them when the buffer is full
// (or maxBytes is negative: the index is then written with every commit).
func (p *pendingIndex) foldParts(n, maxBytes int) int {
	if maxBytes < 0 || p.bytes() >= maxBytes {
		return nParts
	}
	perCycle := max(1, maxBytes/2/(pendingStreamBytes+pendingEntryBytes))
	return min(nParts, max(1, (n*nParts+perCycle-1)/perCycle))
}

// A fold is what one commit folds: partitions [from, from+n), and whether
// it ends the sweep's cycle.
type fold struct {
	from, n  int
	endCycle bool
}

// fold writes the entries of the next k partitions into the index of b, in
// key order, and, when that ends a cycle, the indexed position (committer
// only, in its write transaction).
func (p *pendingIndex) fold(b buckets, meta *bbolt.Bucket, k int) (fold, error) {
	f := fold{from: p.next, n: min(k, nParts-p.next)}
	f.endCycle = f.from+f.n == nParts
	// bbolt keeps the keys and values until the commit: each its own
	// slice of one buffer.
	n := 0
	for part := f.from; part < f.from+f.n; part++ {
		for _, ps := range p.parts[part] {
			n += len(ps.pos)
		}
	}
	const room = hashLen + maxOrd + binary.MaxVarintLen64
	buf := make([]byte, 0, n*room)
	type entries struct {
		h  streamHash
		ps *pendingStream
	}
	var sorted []entries
	for part := f.from; part < f.from+f.n; part++ {
		sorted = sorted[:0]
		for h, ps := range p.parts[part] {
			sorted = append(sorted, entries{h, ps})
		}
		slices.SortFunc(sorted, func(a, b entries) int { return bytes.Compare(a.h[:], b.h[:]) })
		for _, e := range sorted {
			h, ps := e.h, e.ps
			for i, pos := range ps.pos {
				start := len(buf)
				buf = appendOrd(append(buf, h[:]...), ps.first+uint64(i))
				key := buf[start:len(buf):len(buf)]
				buf = binary.AppendUvarint(buf, pos)
				val := buf[start+len(key) : len(buf) : len(buf)]
				if err := b.index.Put(key, val); err != nil {
					return f, fmt.Errorf("fold index entry: %w", err)
				}
			}
		}
	}
	if f.endCycle {
		if err := meta.Put(keyIndexed, be64(p.cycleHead)); err != nil {
			return f, fmt.Errorf("put indexed position: %w", err)
		}
	}
	return f, nil
}

// folded drops the entries of f, whose commit is durable, and moves the
// sweep on; head is the commit's head (committer only, under mu).
func (p *pendingIndex) folded(f fold, head uint64) {
	for part := f.from; part < f.from+f.n; part++ {
		for _, ps := range p.parts[part] {
			p.streams--
			p.entries -= len(ps.pos)
		}
		p.parts[part] = nil
	}
	p.next = f.from + f.n
	if f.endCycle {
		p.indexed, p.cycleHead, p.next = p.cycleHead, head, 0
	}
}
