package reusely

import (
	"sync"
	"time"
)

// maxTrackedPairs bounds the pairs a Provider remembers: a few MB at most,
// and far more deliveries than a Reusely account sends within two
// tolerances.
const maxTrackedPairs = 1 << 16

// pairGuard remembers, for each signed pair (object_id, timestamp) Verify
// accepted, the data.box_id it was delivered for, and refuses the pair for
// any other box id.
//
// It exists because Reusely's signature does not cover the body: whoever
// holds one Authorization value can, within the tolerance, send any body
// with the same pair. Under the same box id such a body lands in the same
// offer stream, where the Fact's slot makes it a conflict (durably, on every
// node). Under another box id it would land in another stream, unseen by
// that slot; the guard refuses it instead, as long as this process
// remembers the pair (see the package documentation for what that leaves
// open).
//
// An entry is needed only while its pair can still pass the time check,
// that is until timestamp + tolerance ≤ first receipt + 2 × tolerance; it
// is forgotten after that, or earlier, oldest first, when maxTrackedPairs
// are held.
type pairGuard struct {
	mu    sync.Mutex
	max   int
	seen  map[string]pairUse
	queue []queued // in admission order; queue[head:] are live
	head  int
}

type pairUse struct {
	boxID string
}

type queued struct {
	pair    string
	expires time.Time
}

func newPairGuard(max int) *pairGuard {
	return &pairGuard{max: max, seen: make(map[string]pairUse)}
}

// admit reports whether pair may be accepted for boxID at now: it may if it
// was never seen, or was seen for the same box id. A pair seen first is
// remembered for 2 × tolerance.
func (g *pairGuard) admit(pair, boxID string, now time.Time, tolerance time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Forget what has expired, oldest first. Admission times are nearly
	// monotone, so stopping at the first live entry leaves at most a few
	// expired ones behind, which the bound or the next call removes.
	for g.head < len(g.queue) && now.After(g.queue[g.head].expires) {
		g.pop()
	}
	if use, ok := g.seen[pair]; ok {
		return use.boxID == boxID
	}
	for len(g.seen) >= g.max {
		g.pop()
	}
	g.seen[pair] = pairUse{boxID: boxID}
	g.queue = append(g.queue, queued{pair: pair, expires: now.Add(2 * tolerance)})
	return true
}

// pop forgets the oldest entry and compacts the queue once half of it is
// dead.
func (g *pairGuard) pop() {
	delete(g.seen, g.queue[g.head].pair)
	g.queue[g.head] = queued{}
	g.head++
	if g.head == len(g.queue) {
		g.queue, g.head = g.queue[:0], 0
	} else if g.head > len(g.queue)/2 && g.head > 64 {
		n := copy(g.queue, g.queue[g.head:])
		clear(g.queue[n:])
		g.queue, g.head = g.queue[:n], 0
	}
}

// len returns the number of pairs remembered.
func (g *pairGuard) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
