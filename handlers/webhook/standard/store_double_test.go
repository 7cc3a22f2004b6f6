package standard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// memStoreDouble is an in-memory eventstore.Store for the tests that run
// deliveries through the real webhook.Handler. It is a copy of the double in
// handlers/webhook/store_double_test.go (test files cannot be imported):
// correct for Append (expected revision, global positions), ReadStream,
// ReadAll, Head and Close; Subscribe is not supported. Hooks inject faults.
type memStoreDouble struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	all     []eventstore.RecordedEvent
	closed  bool
	appends int // calls of Append, including refused ones
	reads   int // calls of ReadStream

	// onAppend, if set, runs before each Append (call counts from 1),
	// outside the lock; a non-nil error is returned instead of appending.
	onAppend func(ctx context.Context, stream string, call int) error
	// onRead, likewise, before each ReadStream.
	onRead func(ctx context.Context, stream string, call int) error
}

var _ eventstore.Store = (*memStoreDouble)(nil)

func newMemStoreDouble() *memStoreDouble {
	return &memStoreDouble{streams: make(map[string][]eventstore.RecordedEvent)}
}

func (s *memStoreDouble) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	s.appends++
	call, hook := s.appends, s.onAppend
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, stream, call); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("memStoreDouble: append to %q: %w", stream, err)
	}
	return s.append(stream, expected, events...)
}

// append appends without hooks: the double's own write path, also used to
// play a concurrent writer.
func (s *memStoreDouble) append(stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.AppendResult{}, fmt.Errorf("memStoreDouble: append to %q: %w", stream, eventstore.ErrClosed)
	}
	if stream == "" || len(events) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("memStoreDouble: append to %q: no stream or no events: %w", stream, eventstore.ErrInvalid)
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
	for _, e := range events {
		rev := uint64(len(cur))
		pos := uint64(len(s.all) + 1)
		rec := eventstore.RecordedEvent{
			Event: aggregate.Event{
				ID:       e.ID,
				Type:     e.Type,
				Data:     append([]byte(nil), e.Data...),
				Metadata: append([]byte(nil), e.Metadata...),
			},
			Stream:     stream,
			Revision:   rev,
			Position:   eventstore.Position{Commit: pos, Prepare: pos},
			RecordedAt: time.Unix(int64(pos), 0).UTC(),
		}
		cur = append(cur, rec)
		s.all = append(s.all, rec)
		res = eventstore.AppendResult{NextRevision: rev, Position: rec.Position}
	}
	s.streams[stream] = cur
	return res, nil
}

func (s *memStoreDouble) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	s.mu.Lock()
	s.reads++
	call, hook := s.reads, s.onRead
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, stream, call); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memStoreDouble: read %q: %w", stream, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memStoreDouble: read %q: %w", stream, eventstore.ErrClosed)
	}
	var out []eventstore.RecordedEvent
	for _, e := range s.streams[stream] {
		if e.Revision >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memStoreDouble) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("memStoreDouble: read all: limit %d: %w", limit, eventstore.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memStoreDouble: read all: %w", eventstore.ErrClosed)
	}
	var out []eventstore.RecordedEvent
	for _, e := range s.all {
		if after.Less(e.Position) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memStoreDouble) Subscribe(context.Context, eventstore.Position, func(context.Context, []eventstore.RecordedEvent) error) error {
	return fmt.Errorf("memStoreDouble: subscribe: %w", errors.ErrUnsupported)
}

func (s *memStoreDouble) Head(context.Context) (eventstore.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return eventstore.Start, nil
	}
	return s.all[len(s.all)-1].Position, nil
}

func (s *memStoreDouble) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// stream returns a copy of a stream's events.
func (s *memStoreDouble) stream(name string) []eventstore.RecordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), s.streams[name]...)
}

// count returns the number of events in the log.
func (s *memStoreDouble) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// appendCalls returns how many times Append was called.
func (s *memStoreDouble) appendCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}
