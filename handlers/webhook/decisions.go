package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
)

// DefaultDecisionCacheBytes is Options.DecisionCacheBytes' default: about
// 20,000 six-event receipt streams.
const DefaultDecisionCacheBytes int64 = 32 << 20

// decisions is what the Handler knows of the streams it decides on, and
// the turn each stream's deliveries wait for.
//
// For each stream in use or recently used it keeps the stream's decision
// state (streamState): how many events the stream holds, the position of
// the event recorded under each dedupe key, and the slots taken. That is
// all aggregate.Decide looks at, so a delivery to a stream in the cache is
// decided without reading the stream, and a duplicate is answered with the
// position of the event it duplicates. The state is filled from the log on
// a miss, advanced by every append the Handler makes, and caught up from
// the log after any append that failed (another node wrote: wrong
// revision; or the outcome is unknown), before the next decision.
// Correctness never depends on it being current: every append carries the
// expected revision the state was decided at, and the store refuses it if
// another writer moved the stream.
//
// Deliveries to one stream take turns: one decides and appends while the
// others wait (until their deadline), so on one node same-stream
// deliveries never race each other into wrong-revision retries. Deliveries
// to different streams run concurrently, so the store's group commit
// still batches their appends.
//
// The states are bounded by bytes (an estimate of their heap size): when
// the total exceeds the budget, the least recently used states no delivery
// holds or waits for are dropped. A stream in use is never dropped (its
// turn must stay unique), so the total may exceed the budget by the states
// of the streams in use.
type decisions struct {
	budget int64

	mu      sync.Mutex
	streams map[string]*streamState
	lru     streamList // states with refs == 0, least recently used first
	bytes   int64      // sum of accounted over streams

	hits, misses, evictions, stale atomic.Uint64
}

// streamState is one stream's decision state and turn.
type streamState struct {
	name string
	// turn is held (a value sent) by the delivery deciding on the stream.
	turn chan struct{}

	// Guarded by decisions.mu:
	refs       int   // deliveries holding or waiting for the turn
	accounted  int64 // size counted in decisions.bytes
	prev, next *streamState
	listed     bool // in decisions.lru

	// Guarded by the turn:
	known bool // rev, dedupe and slots hold a prefix of the stream
	stale bool // the stream may hold more: catch up before deciding
	// rev is the number of events known: the revision of the next one.
	rev    uint64
	dedupe map[string]eventstore.Position // first event of each dedupe key
	slots  map[string]struct{}
	size   int64 // estimated heap bytes of the state
}

// Estimated heap bytes, for the budget: a state's fixed part, and each map
// entry beyond its key's bytes (bucket share, string header, value).
const (
	stateOverhead  = 256
	dedupeOverhead = 64
	slotOverhead   = 48
)

func newDecisions(budget int64) *decisions {
	return &decisions{budget: budget, streams: make(map[string]*streamState)}
}

// acquire waits for stream's turn, until ctx ends.
func (d *decisions) acquire(ctx context.Context, stream string) (*streamState, error) {
	d.mu.Lock()
	s := d.streams[stream]
	if s == nil {
		s = &streamState{name: stream, turn: make(chan struct{}, 1)}
		d.streams[stream] = s
	}
	s.refs++
	if s.listed {
		d.lru.remove(s)
	}
	d.mu.Unlock()
	select {
	case s.turn <- struct{}{}:
		return s, nil
	case <-ctx.Done():
		d.done(s)
		return nil, fmt.Errorf("webhook: wait for the turn on stream %q: %w", stream, ctx.Err())
	}
}

// release gives up the turn on s taken by acquire.
func (d *decisions) release(s *streamState) {
	size := s.size // read under the turn
	d.mu.Lock()
	d.bytes += size - s.accounted
	s.accounted = size
	d.doneLocked(s)
	d.mu.Unlock()
	<-s.turn
}

// done drops a reference to s that does not hold the turn.
func (d *decisions) done(s *streamState) {
	d.mu.Lock()
	d.doneLocked(s)
	d.mu.Unlock()
}

func (d *decisions) doneLocked(s *streamState) {
	s.refs--
	if s.refs > 0 {
		return
	}
	if s.accounted == 0 {
		delete(d.streams, s.name) // nothing known: nothing to keep
	} else {
		d.lru.pushBack(s)
	}
	for d.bytes > d.budget && d.lru.head != nil {
		old := d.lru.head
		d.lru.remove(old)
		delete(d.streams, old.name)
		d.bytes -= old.accounted
		old.accounted = 0
		d.evictions.Add(1)
	}
}

// reset forgets what s knew. Under the turn.
func (s *streamState) reset() {
	s.known, s.stale, s.rev = false, false, 0
	s.dedupe, s.slots = nil, nil
	s.size = 0
}

// record adds an event of the stream at revision s.rev. Under the turn.
func (s *streamState) record(dedupeKey, slotKey string, pos eventstore.Position) {
	if s.dedupe == nil {
		s.dedupe = make(map[string]eventstore.Position, 8)
		s.size = stateOverhead + int64(len(s.name))
	}
	if _, ok := s.dedupe[dedupeKey]; !ok {
		s.dedupe[dedupeKey] = pos
		s.size += int64(len(dedupeKey)) + dedupeOverhead
	}
	if slotKey != "" {
		if s.slots == nil {
			s.slots = make(map[string]struct{}, 8)
		}
		if _, ok := s.slots[slotKey]; !ok {
			s.slots[slotKey] = struct{}{}
			s.size += int64(len(slotKey)) + slotOverhead
		}
	}
	s.rev++
}

// expected is the expected revision of an append decided on s.
func (s *streamState) expected() eventstore.ExpectedRevision {
	if s.rev == 0 {
		return eventstore.NoStream
	}
	return eventstore.Exact(s.rev - 1)
}

// decide is aggregate.Decide on the stream s knows. Decide looks at an
// event only for its dedupe key (is it f's?) and its slot key (is it f's
// slot?), so the events that bear on f — the one recorded under f's dedupe
// key, one holding f's slot — are all the history it needs; the rule
// itself stays in aggregate. For a duplicate it also returns the position
// of the event duplicated.
func (s *streamState) decide(f aggregate.Fact) (aggregate.Decision, eventstore.Position, error) {
	var buf [2]aggregate.Metadata
	history := buf[:0]
	pos, dup := s.dedupe[f.DedupeKey]
	if dup {
		history = append(history, aggregate.Metadata{DedupeKey: f.DedupeKey})
	}
	if f.SlotKey != "" {
		if _, taken := s.slots[f.SlotKey]; taken {
			history = append(history, aggregate.Metadata{SlotKey: f.SlotKey})
		}
	}
	dec, err := aggregate.Decide(history, f)
	return dec, pos, err
}

// catchUp brings s up to the stream in the log: all of it on a miss, what
// was appended since otherwise (streams are only ever appended to, so what
// s knows is a prefix of the stream). Under the turn.
func (h *Handler) catchUp(ctx context.Context, s *streamState) error {
	if s.known {
		h.decisions.stale.Add(1)
	} else {
		h.decisions.misses.Add(1)
		s.reset()
	}
	events, err := h.store.ReadStream(ctx, s.name, s.rev, 0)
	if err != nil {
		s.stale = s.known
		return fmt.Errorf("webhook: read stream %q from revision %d: %w", s.name, s.rev, err)
	}
	for _, e := range events {
		if e.Revision != s.rev {
			s.reset()
			return fmt.Errorf("webhook: read stream %q: revision %d where %d was expected: %w", s.name, e.Revision, s.rev, aggregate.ErrBadEvent)
		}
		m, err := eventcodec.Metadata(e.Event)
		if err != nil {
			s.known, s.stale = true, true // a prefix still; the next delivery reads from here again
			return fmt.Errorf("webhook: decide on stream %q: revision %d: %w: %w", s.name, e.Revision, aggregate.ErrBadEvent, err)
		}
		s.record(m.DedupeKey, m.SlotKey, e.Position)
	}
	if s.dedupe == nil {
		s.size = stateOverhead + int64(len(s.name)) // an empty stream is worth remembering too
	}
	s.known, s.stale = true, false
	return nil
}

// afterFailedAppend marks what s knows as possibly behind the stream after
// an append failed: another writer moved it (wrong revision), or the
// outcome is unknown (the append may have landed). A wrong revision
// showing the stream shorter than s knows it (never, unless the stream was
// deleted) drops s altogether. Under the turn.
func (s *streamState) afterFailedAppend(err error) {
	s.stale = true
	var wrong *eventstore.WrongRevisionError
	if errors.As(err, &wrong) && wrong.Actual != eventstore.Any && wrong.Actual < s.expected() {
		s.reset()
	}
}

// cached reports how many stream states are held and their bytes.
func (d *decisions) cached() (streams int, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.streams), d.bytes
}

// streamList is an intrusive doubly-linked list of stream states.
type streamList struct {
	head, tail *streamState
}

func (l *streamList) pushBack(s *streamState) {
	s.prev, s.next, s.listed = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *streamList) remove(s *streamState) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next, s.listed = nil, nil, false
}
