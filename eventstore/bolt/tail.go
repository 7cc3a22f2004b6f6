package bolt

import (
	"sync"

	"github.com/receiptd/receiptd/eventstore"
)

// The tail keeps the records of the last commits in memory, as the
// committer wrote them, so that a subscriber that has caught up gets each
// new event from there (decoded like a record read from the file) instead
// of reading the file: live delivery then touches no page of the mapping,
// and a process that only follows the log keeps none resident. A
// subscriber that falls behind the tail (a slow handler, a long catch-up)
// reads the file as before; the committer never waits for a subscriber:
// it appends and drops the oldest records past Options.TailBytes.
//
// Only the committer fills the tail, right after a commit, with every
// event of it in position order, so the tail always holds a contiguous run
// of positions ending at the head. When a commit fails, the file may hold
// events the tail does not: the tail is emptied, and subscribers read the
// file until the next commit starts a new run.
type tail struct {
	mu    sync.Mutex
	max   int          // bytes; 0 keeps nothing
	recs  []tailRecord // positions first, first+1, …
	start int          // recs[start:] are live
	first uint64       // position of recs[start]
	bytes int
}

type tailRecord struct {
	rec  []byte // the record as written; never modified after the commit
	size int    // what it counts for against max
}

// tailOverhead is what a record costs besides its bytes.
const tailOverhead = 64

// add appends the records of one commit, the first at position first.
func (t *tail) add(first uint64, recs [][]byte) {
	if t.max <= 0 || len(recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.start == len(t.recs) || first != t.first+uint64(len(t.recs)-t.start) {
		t.resetLocked()
		t.first = first
	}
	for _, r := range recs {
		n := len(r) + tailOverhead
		t.recs = append(t.recs, tailRecord{rec: r, size: n})
		t.bytes += n
	}
	for t.bytes > t.max && t.start < len(t.recs) {
		t.bytes -= t.recs[t.start].size
		t.recs[t.start] = tailRecord{}
		t.start++
		t.first++
	}
	// Reclaim the dropped front once it is half the slice.
	if t.start > 0 && t.start >= len(t.recs)/2 {
		n := copy(t.recs, t.recs[t.start:])
		clear(t.recs[n:])
		t.recs, t.start = t.recs[:n], 0
	}
}

// reset empties the tail.
func (t *tail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetLocked()
}

func (t *tail) resetLocked() {
	clear(t.recs)
	t.recs, t.start, t.bytes = t.recs[:0], 0, 0
}

// after decodes up to limit events after pos from the tail. ok is false
// when the tail does not hold the event after pos (the caller reads the
// file); an empty result with ok means pos is the tail's last event.
func (t *tail) after(pos eventstore.Position, limit int) (out []eventstore.RecordedEvent, ok bool, err error) {
	next, more := firstAfter(pos)
	if !more {
		return nil, false, nil
	}
	t.mu.Lock()
	live := t.recs[t.start:]
	first := t.first
	if len(live) == 0 || next < first || next > first+uint64(len(live)) {
		t.mu.Unlock()
		return nil, false, nil
	}
	i := int(next - first)
	n := min(len(live)-i, limit)
	// The records are never modified once in the tail; copy the slice
	// headers and decode outside the lock.
	recs := make([][]byte, n)
	for j := range recs {
		recs[j] = live[i+j].rec
	}
	t.mu.Unlock()
	out = make([]eventstore.RecordedEvent, 0, n)
	for j, rec := range recs {
		ev, err := decodeRecord(next+uint64(j), rec)
		if err != nil {
			return nil, false, err
		}
		out = append(out, ev)
	}
	return out, true, nil
}
