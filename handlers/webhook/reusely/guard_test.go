package reusely

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPairGuard(t *testing.T) {
	const tol = time.Hour
	t0 := time.Date(2025, 6, 9, 4, 2, 20, 0, time.UTC)
	g := newPairGuard(3)

	if !g.admit("p1", "A", t0, tol) || !g.admit("p1", "A", t0.Add(time.Minute), tol) {
		t.Fatal("a pair is refused for its own box")
	}
	if g.admit("p1", "B", t0.Add(time.Minute), tol) {
		t.Fatal("a pair is admitted for another box")
	}
	if g.admit("p1", "", t0, tol) {
		t.Fatal("a pair is admitted without a box after one with")
	}

	// Expiry: after two tolerances the pair is forgotten (its timestamp can
	// no longer pass Verify's time check anyway).
	if !g.admit("p1", "B", t0.Add(2*tol+time.Second), tol) {
		t.Fatal("an expired pair is still remembered")
	}
	if g.len() != 1 {
		t.Fatalf("%d pairs remembered, want 1", g.len())
	}

	// Bound: the oldest pair goes first.
	t1 := t0.Add(2*tol + time.Minute)
	for _, p := range []string{"p2", "p3", "p4"} {
		if !g.admit(p, "A", t1, tol) {
			t.Fatalf("%s refused", p)
		}
	}
	if g.len() != 3 {
		t.Fatalf("%d pairs remembered, want the bound 3", g.len())
	}
	if !g.admit("p1", "C", t1, tol) { // p1 was the oldest, evicted by p4
		t.Fatal("the oldest pair was not evicted at the bound")
	}
	if g.admit("p4", "B", t1, tol) {
		t.Fatal("a recent pair was evicted")
	}
}

func TestPairGuardCompacts(t *testing.T) {
	g := newPairGuard(1 << 20)
	t0 := time.Date(2025, 6, 9, 0, 0, 0, 0, time.UTC)
	for i := range 10000 {
		// Each admission is a tolerance after the previous one: all earlier
		// pairs have expired by the next call.
		at := t0.Add(time.Duration(i) * 3 * time.Minute)
		if !g.admit(fmt.Sprint(i), "A", at, time.Minute) {
			t.Fatalf("pair %d refused", i)
		}
	}
	if g.len() != 1 || len(g.queue)-g.head != 1 || cap(g.queue) > 1024 {
		t.Fatalf("map %d, queue %d live of %d (cap %d): expired entries kept", g.len(), len(g.queue)-g.head, len(g.queue), cap(g.queue))
	}
}

// TestPairGuardConcurrent: racing deliveries of one pair for different
// boxes, exactly one box wins each pair.
func TestPairGuardConcurrent(t *testing.T) {
	g := newPairGuard(1 << 10)
	t0 := time.Date(2025, 6, 9, 0, 0, 0, 0, time.UTC)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners = map[string]map[int]bool{}
	)
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				pair := fmt.Sprint("p", i)
				if g.admit(pair, fmt.Sprint("box", w), t0, time.Hour) {
					mu.Lock()
					if winners[pair] == nil {
						winners[pair] = map[int]bool{}
					}
					winners[pair][w] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(winners) != 100 {
		t.Fatalf("%d pairs admitted, want 100", len(winners))
	}
	for pair, ws := range winners {
		if len(ws) != 1 {
			t.Fatalf("pair %s admitted for %d boxes", pair, len(ws))
		}
	}
}
