package webhook

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// TestDecisionCacheEstimate holds the decision cache's estimate of its
// heap bytes (what its budget counts) to the Go heap its states take, for
// streams of 0 to 40 events (a user's one event, a receipt's six, a long
// entity stream whose keys are in maps), with Reewild's ~120-byte dedupe
// keys. Before it was measured, a one-event stream took 1.9 times its
// estimate, and the cache of the bench's fill about twice its budget.
func TestDecisionCacheEstimate(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	ctx := context.Background()
	for _, events := range []int{0, 1, 2, 3, 6, 8, 20, 33, 40, 100, 1000} {
		streams := min(20_000, 400_000/max(1, events))
		d := newDecisions(1 << 40)
		before := heap()
		for i := range streams {
			s, err := d.acquire(ctx, fmt.Sprintf("receipt-reewild.%036d", i))
			if err != nil {
				t.Fatal(err)
			}
			s.resize()
			for j := range events {
				s.record(keysOf(fmt.Sprintf("receipt.stage%d:%036d:%064x", j, i, j), fmt.Sprintf("stage:STAGE%d", j)), eventstore.Position{Commit: uint64(i), Prepare: uint64(j)})
			}
			d.release(s)
		}
		real := float64(heap()-before) / float64(streams)
		n, bytes := d.cached()
		runtime.KeepAlive(d)
		if n != streams {
			t.Fatalf("%d states held, want %d", n, streams)
		}
		est := float64(bytes) / float64(streams)
		t.Logf("%2d events: %4.0f B of heap per stream, estimated %4.0f B (%.2f)", events, real, est, real/est)
		if real > est*1.15 || real < est*0.85 {
			t.Errorf("%d events: %.0f B of heap per stream, estimated %.0f B: more than 15%% off", events, real, est)
		}
	}
}

// TestStreamStateLongStream decides on a stream whose keys outgrow the
// slices (mapAbove) and move to maps: every dedupe key keeps the position
// of its first event, every slot stays taken, before and after the move.
func TestStreamStateLongStream(t *testing.T) {
	s := &streamState{name: "entity-standard.long"}
	key := func(i int) string { return fmt.Sprintf("entity.updated:long:%064x", i) }
	slot := func(i int) string { return fmt.Sprintf("slot:%d", i%(2*mapAbove)) }
	check := func(n int) {
		t.Helper()
		for i := range n + 1 {
			f := aggregate.Fact{DedupeKey: key(i), SlotKey: slot(i), OnConflict: aggregate.Correct}
			d, pos, err := s.decide(f, keysOf(f.DedupeKey, f.SlotKey))
			switch {
			case err != nil:
				t.Fatal(err)
			case i < n && (d.Outcome != aggregate.Duplicate || pos.Commit != uint64(i)):
				t.Fatalf("after %d events, key %d: %v at %v, want a duplicate of the event at %d", n, i, d.Outcome, pos, i)
			case i == n && d.Outcome != aggregate.Append:
				t.Fatalf("after %d events, a new key: %v, want append", n, d.Outcome)
			case i == n && d.Correction != (n >= 2*mapAbove):
				t.Fatalf("after %d events, a new key in slot %q: correction %v", n, slot(i), d.Correction)
			}
		}
	}
	for i := range 3 * mapAbove {
		check(i)
		s.record(keysOf(key(i), slot(i)), eventstore.Position{Commit: uint64(i)})
		// A later event under an earlier key does not move its position.
		s.record(keysOf(key(i/2), ""), eventstore.Position{Commit: 1 << 40})
	}
	check(3 * mapAbove)
	if s.dedupeMap == nil || s.slotMap == nil || s.dedupe != nil || s.slots != nil {
		t.Fatal("the keys of a long stream are not in maps")
	}
}
