// Package storedouble is a test double of eventstore.Store: an in-memory
// log for the tests of handlers/webhook and its providers, and for the
// bench's ingest-only server (ingest with no disk). It passes the store
// conformance suite (eventstore/storetest) for Append (expected revision,
// global positions), ReadStream, ReadAll, Head and Close; Subscribe is not
// implemented and says so (errors.ErrUnsupported). Hooks inject faults. It
// is not a store to run receiptd on: nothing is durable.
//
// This package imports eventstore, aggregate and the standard library.
package storedouble

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// MemStoreDouble is the in-memory eventstore.Store test double.
type MemStoreDouble struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	all     []eventstore.RecordedEvent
	closed  bool
	appends int // calls of Append, including refused ones
	reads   int // calls of ReadStream

	// OnAppend, if set, runs before each Append (call counts from 1),
	// outside the lock; a non-nil error is returned instead of appending.
	// Set it before the double is used.
	OnAppend func(ctx context.Context, stream string, call int) error
	// OnRead, likewise, before each ReadStream.
	OnRead func(ctx context.Context, stream string, call int) error
}

var _ eventstore.Store = (*MemStoreDouble)(nil)

// NewMemStoreDouble returns an empty double.
func NewMemStoreDouble() *MemStoreDouble {
	return &MemStoreDouble{streams: make(map[string][]eventstore.RecordedEvent)}
}

func (s *MemStoreDouble) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	s.appends++
	call, hook := s.appends, s.OnAppend
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, stream, call); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("MemStoreDouble: append to %q: %w", stream, err)
	}
	return s.AppendDirect(stream, expected, events...)
}

// AppendDirect appends without hooks: the double's own write path, also
// used to play a concurrent writer.
func (s *MemStoreDouble) AppendDirect(stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.AppendResult{}, fmt.Errorf("MemStoreDouble: append to %q: %w", stream, eventstore.ErrClosed)
	}
	if stream == "" || len(events) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("MemStoreDouble: append to %q: no stream or no events: %w", stream, eventstore.ErrInvalid)
	}
	cur := s.streams[stream]
	actual := eventstore.NoStream
	if len(cur) > 0 {
		actual = eventstore.Exact(cur[len(cur)-1].Revision)
	}
	if expected != eventstore.Any && expected != actual {
		return eventstore.AppendResult{}, &eventstore.WrongRevisionError{Stream: stream, Expected: expected, Actual: actual}
	}
	var res eventstore.AppendResult
	now := time.Now().UTC()
	for _, e := range events {
		rev := uint64(len(cur))
		pos := uint64(len(s.all) + 1)
		rec := eventstore.RecordedEvent{
			Event: aggregate.Event{
				ID:       e.ID,
				Type:     e.Type,
				Data:     append([]byte(nil), e.Data...),
				Metadata: append([]byte(nil), e.Metadata...),
				Body:     append([]byte(nil), e.Body...),
			},
			Stream:     stream,
			Revision:   rev,
			Position:   eventstore.Position{Commit: pos, Prepare: pos},
			RecordedAt: now,
		}
		cur = append(cur, rec)
		s.all = append(s.all, rec)
		res = eventstore.AppendResult{NextRevision: rev, Position: rec.Position}
	}
	s.streams[stream] = cur
	return res, nil
}

func (s *MemStoreDouble) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	s.mu.Lock()
	s.reads++
	call, hook := s.reads, s.OnRead
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, stream, call); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("MemStoreDouble: read %q: %w", stream, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("MemStoreDouble: read %q: %w", stream, eventstore.ErrClosed)
	}
	cur := s.streams[stream] // cur[rev] has revision rev
	if from >= uint64(len(cur)) {
		return nil, nil
	}
	cur = cur[from:]
	if limit > 0 && len(cur) > limit {
		cur = cur[:limit]
	}
	return append([]eventstore.RecordedEvent(nil), cur...), nil
}

func (s *MemStoreDouble) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("MemStoreDouble: read all: %w", err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("MemStoreDouble: read all: limit %d: %w", limit, eventstore.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("MemStoreDouble: read all: %w", eventstore.ErrClosed)
	}
	i := sort.Search(len(s.all), func(i int) bool { return after.Less(s.all[i].Position) })
	out := s.all[i:]
	if len(out) > limit {
		out = out[:limit]
	}
	return append([]eventstore.RecordedEvent(nil), out...), nil
}

// Subscribe is not implemented: it returns an error matching
// errors.ErrUnsupported at once.
func (s *MemStoreDouble) Subscribe(context.Context, eventstore.Position, func(context.Context, []eventstore.RecordedEvent) error) error {
	return fmt.Errorf("MemStoreDouble: subscribe: %w", errors.ErrUnsupported)
}

func (s *MemStoreDouble) Head(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Position{}, fmt.Errorf("MemStoreDouble: head: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.Position{}, fmt.Errorf("MemStoreDouble: head: %w", eventstore.ErrClosed)
	}
	if len(s.all) == 0 {
		return eventstore.Start, nil
	}
	return s.all[len(s.all)-1].Position, nil
}

func (s *MemStoreDouble) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Stream returns a copy of a stream's events.
func (s *MemStoreDouble) Stream(name string) []eventstore.RecordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), s.streams[name]...)
}

// Count returns the number of events in the log.
func (s *MemStoreDouble) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// AppendCalls returns how many times Append was called.
func (s *MemStoreDouble) AppendCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// ReadCalls returns how many times ReadStream was called.
func (s *MemStoreDouble) ReadCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// SetOnAppend sets OnAppend under the double's lock, while deliveries may
// be running.
func (s *MemStoreDouble) SetOnAppend(fn func(ctx context.Context, stream string, call int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.OnAppend = fn
}

// SetOnRead sets OnRead likewise.
func (s *MemStoreDouble) SetOnRead(fn func(ctx context.Context, stream string, call int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.OnRead = fn
}
