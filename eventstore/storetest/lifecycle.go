package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// testDurability: a reopened store holds everything, at the same revisions
// and positions, and appends continue after it.
func testDurability(t *testing.T, h Harness) {
	if !h.Features.Reopen {
		t.Skip("Features.Reopen is false: the harness cannot reopen a closed log")
	}
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	a, b, d := c.stream("a"), c.stream("b"), c.stream("d")
	c.append(s, a, eventstore.NoStream, c.newEvents(2)...)
	c.append(s, b, eventstore.NoStream, c.newEvent())
	c.append(s, a, eventstore.Exact(1), c.newEvent())
	last := c.append(s, c.stream("c"), eventstore.NoStream, c.newEvents(3)...)

	before := c.readOwn(s, from)
	if len(before) != 7 {
		t.Fatalf("read %d of the case's events before closing, want 7", len(before))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = c.openStore()
	after := c.readOwn(s, from)
	if len(after) != len(before) {
		t.Fatalf("after reopening: %d of the case's events, want %d", len(after), len(before))
	}
	for i := range before {
		sameRecorded(t, "after reopening", after[i], before[i])
	}
	for _, stream := range []string{a, b} {
		var want []eventstore.RecordedEvent
		for _, e := range before {
			if e.Stream == stream {
				want = append(want, e)
			}
		}
		got := c.readStream(s, stream, 0, 0)
		if len(got) != len(want) {
			t.Fatalf("ReadStream(%q) after reopening: %d events, want %d", stream, len(got), len(want))
		}
		for i := range want {
			sameRecorded(t, "ReadStream after reopening", got[i], want[i])
		}
	}
	head, err := s.Head(c.ctx)
	if err != nil {
		t.Fatalf("Head after reopening: %v", err)
	}
	if head.Less(last.Position) {
		t.Fatalf("Head after reopening: %s, before the last append at %s", head, last.Position)
	}

	// Revisions and positions continue.
	e := c.newEvent()
	res := c.append(s, a, eventstore.Exact(2), e)
	if res.NextRevision != 3 || !last.Position.Less(res.Position) {
		t.Fatalf("append after reopening: revision %d at %s, want 3 after %s", res.NextRevision, res.Position, last.Position)
	}
	_, err = s.Append(c.ctx, b, eventstore.NoStream, c.newEvent())
	checkWrongRevision(t, err, b, eventstore.NoStream, eventstore.Exact(0))
	res2 := c.append(s, d, eventstore.NoStream, c.newEvent())
	if res2.NextRevision != 0 || !res.Position.Less(res2.Position) {
		t.Fatalf("append to a new stream after reopening: revision %d at %s, want 0 after %s", res2.NextRevision, res2.Position, res.Position)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = c.openStore()
	got := c.readStream(s, a, 0, 0)
	if len(got) != 4 {
		t.Fatalf("%s after a second reopening: %d events, want 4", a, len(got))
	}
	checkEvent(t, got[3], a, 3, e)
	if got[3].Position != res.Position {
		t.Fatalf("%s@3 at %s, appended at %s", a, got[3].Position, res.Position)
	}
}

// testCancelledContext: every method given a cancelled context fails with
// an error wrapping context.Canceled.
func testCancelledContext(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("cancelled")
	c.append(s, stream, eventstore.NoStream, c.newEvent())
	ctx, cancel := context.WithCancel(c.ctx)
	cancel()

	if _, err := s.Append(ctx, stream, eventstore.Any, c.newEvent()); !errors.Is(err, context.Canceled) {
		t.Errorf("Append: got %v, want an error wrapping context.Canceled", err)
	}
	if _, err := s.ReadStream(ctx, stream, 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadStream: got %v, want an error wrapping context.Canceled", err)
	}
	if _, err := s.ReadAll(ctx, eventstore.Start, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAll: got %v, want an error wrapping context.Canceled", err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Head: got %v, want an error wrapping context.Canceled", err)
	}
}

// testClose: after Close every method returns ErrClosed.
func testClose(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("close")
	c.append(s, stream, eventstore.NoStream, c.newEvent())
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if _, err := s.Append(c.ctx, stream, eventstore.Any, c.newEvent()); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.ReadStream(c.ctx, stream, 0, 0); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ReadStream after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.ReadAll(c.ctx, eventstore.Start, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ReadAll after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Head(c.ctx); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Head after Close: got %v, want ErrClosed", err)
	}
	t.Run("Subscribe", func(t *testing.T) {
		needSubscribe(t, h)
		sub := c.in(t).subscribe(c.ctx, s, eventstore.Start, func(context.Context, []eventstore.RecordedEvent) error { return nil })
		if err := sub.wait(t, promptly, "its store was closed"); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
		}
	})
	if err := s.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("second Close: got %v, want nil or ErrClosed", err)
	}
}

// testCloseInFlight: Close while appends are in flight; each completes or
// fails, none hangs, and (with Reopen) every acknowledged one is durable.
func testCloseInFlight(t *testing.T, h Harness) {
	const writers = 16
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)

	type ack struct {
		id     string
		stream string
		res    eventstore.AppendResult
	}
	plans := make([][]aggregate.Event, writers)
	for w := range plans {
		plans[w] = c.newEvents(200)
	}
	acks := make([][]ack, writers)
	failures := make([]error, writers)
	var acked atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w, plan := range plans {
		stream := c.stream(fmt.Sprintf("inflight%d", w))
		wg.Go(func() {
			expected := eventstore.NoStream
			for _, e := range plan {
				res, err := s.Append(c.ctx, stream, expected, e)
				if err != nil {
					failures[w] = err
					return
				}
				acks[w] = append(acks[w], ack{e.ID, stream, res})
				expected = eventstore.Exact(res.NextRevision)
				if acked.Add(1) == writers*4 {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-c.ctx.Done():
		t.Fatalf("appends before Close: %v", c.ctx.Err())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with appends in flight: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-c.ctx.Done():
		t.Fatalf("appends still running after Close returned: %v", c.ctx.Err())
	}
	for w, err := range failures {
		switch {
		case err == nil, errors.Is(err, eventstore.ErrClosed):
		case errors.Is(err, eventstore.ErrWrongRevision), errors.Is(err, eventstore.ErrInvalid):
			t.Errorf("writer %d: append in flight during Close: %v", w, err)
		default:
			t.Logf("writer %d: append in flight during Close failed with %v", w, err)
		}
	}
	if !h.Features.Reopen {
		return
	}
	s = c.openStore()
	own := c.readOwn(s, from)
	byID := make(map[string]eventstore.RecordedEvent, len(own))
	for _, e := range own {
		byID[e.ID] = e
	}
	n := 0
	for _, as := range acks {
		for _, a := range as {
			n++
			got, ok := byID[a.id]
			if !ok {
				t.Fatalf("append of %s to %s was acknowledged before Close but is not in the reopened log", a.id, a.stream)
			}
			if got.Position != a.res.Position || got.Revision != a.res.NextRevision {
				t.Fatalf("%s: acknowledged at %s revision %d, reopened at %s revision %d", a.id, a.res.Position, a.res.NextRevision, got.Position, got.Revision)
			}
		}
	}
	if n < writers*4 {
		t.Fatalf("only %d appends acknowledged", n)
	}
}

// testCloseEndsSubscribe: a live Subscribe returns ErrClosed when its store
// closes.
func testCloseEndsSubscribe(t *testing.T, h Harness) {
	needSubscribe(t, h)
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	e := c.newEvent()
	col := newCollector(t, c.own, from)
	sub := c.subscribe(c.ctx, s, from, col.handle)
	c.append(s, c.stream("closesub"), eventstore.NoStream, e)
	if err := col.await(c.ctx, sub, hasID(e.ID)); err != nil {
		t.Fatalf("waiting for the event: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sub.wait(t, promptly, "its store was closed"); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Subscribe when its store closed: got %v, want ErrClosed", err)
	}
}
