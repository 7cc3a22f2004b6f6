package webhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
)

// DefaultDecisionCacheBytes is Options.DecisionCacheBytes' default: about
// 45,000 six-event receipt streams (748 B each; TestDecisionCacheEstimate).
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
	known bool // rev, the dedupe keys and the slots hold a prefix of the stream
	stale bool // the stream may hold more: catch up before deciding
	// rev is the number of events known: the revision of the next one.
	rev uint64
	// The dedupe keys (with the position of the first event of each) and
	// the slot keys of the events known, by fingerprint: in small slices
	// searched in order while the stream is short (a receipt's few
	// events), in maps once it is long (an entity or quarantine stream).
	dedupe    []dedupeEntry
	slots     []fingerprint
	dedupeMap map[fingerprint]eventstore.Position
	slotMap   map[fingerprint]struct{}
	size      int64 // estimated heap bytes of the state
}

// A fingerprint stands for a dedupe or slot key in the decision state:
// the first 128 bits of its SHA-256. Two keys with one fingerprint would
// be taken for one (a new fact answered as a duplicate), which needs a
// SHA-256 collision; the keys themselves (a Reewild dedupe key is ~120
// bytes) would make the state several times larger.
type fingerprint [16]byte

func fingerprintOf(key string) fingerprint {
	// The key's bytes as they are (Sum256 neither keeps nor changes
	// them): a []byte copy would cost an allocation per delivery.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
	return fingerprint(sum[:16])
}

// factKeys are the fingerprints of an event's dedupe key and slot key.
type factKeys struct {
	dedupe  fingerprint
	slot    fingerprint
	hasSlot bool
}

func keysOf(dedupeKey, slotKey string) factKeys {
	k := factKeys{dedupe: fingerprintOf(dedupeKey), hasSlot: slotKey != ""}
	if k.hasSlot {
		k.slot = fingerprintOf(slotKey)
	}
	return k
}

type dedupeEntry struct {
	key fingerprint
	pos eventstore.Position
}

// Keys past which a stream's dedupe keys (or slot keys) move from their
// slice to a map.
const mapAbove = 32

// Heap bytes of a state, for the budget, measured (TestDecisionCacheEstimate
// holds the estimate within 15% of the Go heap a state takes): the state,
// its turn channel, its entry in decisions.streams and its name's bytes;
// the slices' capacity (append grows a slice to fill its allocation, so
// cap is what it takes); a map's slots (mapSlots) at their size with the
// map's control bytes and headers.
const (
	stateOverhead   = 312
	dedupeEntrySize = int64(unsafe.Sizeof(dedupeEntry{}))
	slotEntrySize   = int64(unsafe.Sizeof(fingerprint{}))
	dedupeMapSlot   = 36
	slotMapSlot     = 20
)

// mapSlots is the number of slots of a map made with room for mapAbove+1
// keys and holding n: Go's maps keep at most 7 keys in 8 slots and double
// when full.
func mapSlots(n int) int64 {
	slots := int64(8)
	for slots*7/8 < int64(max(n, mapAbove+1)) {
		slots *= 2
	}
	return slots
}

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
	s.dedupe, s.slots, s.dedupeMap, s.slotMap = nil, nil, nil, nil
	s.size = 0
}

// record adds an event of the stream at revision s.rev, with the keys k.
// Under the turn.
func (s *streamState) record(k factKeys, pos eventstore.Position) {
	if !s.hasDedupe(k.dedupe) {
		s.addDedupe(k.dedupe, pos)
	}
	if k.hasSlot && !s.hasSlot(k.slot) {
		s.addSlot(k.slot)
	}
	s.rev++
	s.resize()
}

// dedupeAt returns the position of the first event recorded under the
// dedupe key of fingerprint k.
func (s *streamState) dedupeAt(k fingerprint) (eventstore.Position, bool) {
	if s.dedupeMap != nil {
		pos, ok := s.dedupeMap[k]
		return pos, ok
	}
	for _, e := range s.dedupe {
		if e.key == k {
			return e.pos, true
		}
	}
	return eventstore.Position{}, false
}

func (s *streamState) hasDedupe(k fingerprint) bool {
	_, ok := s.dedupeAt(k)
	return ok
}

func (s *streamState) addDedupe(k fingerprint, pos eventstore.Position) {
	if s.dedupeMap == nil && len(s.dedupe) < mapAbove {
		s.dedupe = append(s.dedupe, dedupeEntry{k, pos})
		return
	}
	if s.dedupeMap == nil {
		s.dedupeMap = make(map[fingerprint]eventstore.Position, mapAbove+1)
		for _, e := range s.dedupe {
			s.dedupeMap[e.key] = e.pos
		}
		s.dedupe = nil
	}
	s.dedupeMap[k] = pos
}

func (s *streamState) hasSlot(k fingerprint) bool {
	if s.slotMap != nil {
		_, ok := s.slotMap[k]
		return ok
	}
	for _, e := range s.slots {
		if e == k {
			return true
		}
	}
	return false
}

func (s *streamState) addSlot(k fingerprint) {
	if s.slotMap == nil && len(s.slots) < mapAbove {
		s.slots = append(s.slots, k)
		return
	}
	if s.slotMap == nil {
		s.slotMap = make(map[fingerprint]struct{}, mapAbove+1)
		for _, e := range s.slots {
			s.slotMap[e] = struct{}{}
		}
		s.slots = nil
	}
	s.slotMap[k] = struct{}{}
}

// resize sets s.size to the estimated heap bytes of what s knows.
func (s *streamState) resize() {
	s.size = stateOverhead + int64(len(s.name)) + int64(cap(s.dedupe))*dedupeEntrySize + int64(cap(s.slots))*slotEntrySize
	if s.dedupeMap != nil {
		s.size += mapSlots(len(s.dedupeMap)) * dedupeMapSlot
	}
	if s.slotMap != nil {
		s.size += mapSlots(len(s.slotMap)) * slotMapSlot
	}
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
func (s *streamState) decide(f aggregate.Fact, k factKeys) (aggregate.Decision, eventstore.Position, error) {
	var buf [2]aggregate.Metadata
	history := buf[:0]
	pos, dup := s.dedupeAt(k.dedupe)
	if dup {
		history = append(history, aggregate.Metadata{DedupeKey: f.DedupeKey})
	}
	if k.hasSlot && s.hasSlot(k.slot) {
		history = append(history, aggregate.Metadata{SlotKey: f.SlotKey})
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
		s.record(keysOf(m.DedupeKey, m.SlotKey), e.Position)
	}
	s.resize() // an empty stream is worth remembering too
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
