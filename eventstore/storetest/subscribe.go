package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// collector is a Subscribe handler that checks the delivery rules (batches
// never empty, never concurrent, positions strictly increasing from where the
// subscription started, no event twice) and keeps the case's own events.
type collector struct {
	t        *testing.T
	own      func(eventstore.RecordedEvent) bool
	inflight atomic.Int32
	calls    atomic.Int32

	mu      sync.Mutex
	last    eventstore.Position
	got     []eventstore.RecordedEvent
	seen    map[string]bool
	changed chan struct{} // closed and replaced when got grows
}

var errBadDelivery = errors.New("storetest: delivery broke the Subscribe contract")

func newCollector(t *testing.T, own func(eventstore.RecordedEvent) bool, after eventstore.Position) *collector {
	return &collector{t: t, own: own, last: after, seen: map[string]bool{}, changed: make(chan struct{})}
}

func (k *collector) handle(_ context.Context, batch []eventstore.RecordedEvent) error {
	k.calls.Add(1)
	if k.inflight.Add(1) != 1 {
		k.t.Errorf("Subscribe called its handler concurrently")
		return errBadDelivery
	}
	defer k.inflight.Add(-1)
	if len(batch) == 0 {
		k.t.Errorf("Subscribe called its handler with an empty batch")
		return errBadDelivery
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	grew := false
	for _, e := range batch {
		if !k.last.Less(e.Position) {
			k.t.Errorf("Subscribe delivered %s at %s after %s: positions must strictly increase", e.Stream, e.Position, k.last)
			return errBadDelivery
		}
		k.last = e.Position
		if !k.own(e) {
			continue
		}
		if k.seen[e.ID] {
			k.t.Errorf("Subscribe delivered event %s (%s@%d) twice", e.ID, e.Stream, e.Revision)
			return errBadDelivery
		}
		k.seen[e.ID] = true
		k.got = append(k.got, e)
		grew = true
	}
	if grew {
		close(k.changed)
		k.changed = make(chan struct{})
	}
	return nil
}

// await waits until cond holds for the events collected so far, ctx ends or
// the subscription ends.
func (k *collector) await(ctx context.Context, sub *subscription, cond func([]eventstore.RecordedEvent) bool) error {
	for {
		k.mu.Lock()
		ok, n, ch := cond(k.got), len(k.got), k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-sub.done:
			return fmt.Errorf("Subscribe returned %v after delivering %d of the case's events", sub.err, n)
		case <-ctx.Done():
			return fmt.Errorf("after %d of the case's events: %w", n, ctx.Err())
		}
	}
}

// events returns a copy of what was collected.
func (k *collector) events() []eventstore.RecordedEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), k.got...)
}

func hasID(id string) func([]eventstore.RecordedEvent) bool {
	return func(evs []eventstore.RecordedEvent) bool {
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].ID == id {
				return true
			}
		}
		return false
	}
}

func atLeast(n int) func([]eventstore.RecordedEvent) bool {
	return func(evs []eventstore.RecordedEvent) bool { return len(evs) >= n }
}

// needSubscribe skips t unless the store implements Subscribe.
func needSubscribe(t *testing.T, h Harness) {
	t.Helper()
	if !h.Features.Subscribe {
		t.Skip("Features.Subscribe is false: the store does not implement Subscribe")
	}
}

// subscription is a Subscribe running in its own goroutine.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// subscribe starts s.Subscribe(ctx, after, handle) with a context derived
// from the case's. The case's cleanup cancels it and checks that it returns.
func (c *tcase) subscribe(ctx context.Context, s eventstore.Store, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) *subscription {
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		sub.err = s.Subscribe(ctx, after, handle)
	}()
	t := c.t
	t.Cleanup(func() {
		cancel()
		select {
		case <-sub.done:
		case <-time.After(promptly):
			t.Errorf("Subscribe still running %s after its context was cancelled", promptly)
		}
	})
	return sub
}

// wait returns Subscribe's error, failing the test unless it returns within d.
func (sub *subscription) wait(t *testing.T, d time.Duration, why string) error {
	t.Helper()
	select {
	case <-sub.done:
		return sub.err
	case <-time.After(d):
		t.Fatalf("Subscribe still running %s after %s", d, why)
		return nil
	}
}

// testSubscribeCatchUpThenLive: events appended before and while
// subscribed are all delivered once, in order, across the switch from
// catch-up to live.
func testSubscribeCatchUpThenLive(t *testing.T, h Harness) {
	needSubscribe(t, h)
	const (
		k       = 120 // events before, and again while, subscribed
		writers = 4
		perW    = k / writers
	)
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)

	streams := make([]string, writers)
	rev := make([]eventstore.ExpectedRevision, writers)
	var want []aggregate.Event
	for w := range streams {
		streams[w] = c.stream(fmt.Sprintf("sub%d", w))
		rev[w] = eventstore.NoStream
	}
	// Before: appends of 1 or 2 events, round robin over the streams.
	for i := 0; len(want) < k; i++ {
		w := i % writers
		evs := c.newEvents(min(1+i%2, k-len(want)))
		rev[w] = eventstore.Exact(c.append(s, streams[w], rev[w], evs...).NextRevision)
		want = append(want, evs...)
	}

	col := newCollector(t, c.own, from)
	sub := c.subscribe(c.ctx, s, from, col.handle)

	// While subscribed: each writer appends half its events at once (racing
	// the catch-up) and the other half once the first k have been delivered
	// (the subscription is then live, or about to be).
	plans := make([][]aggregate.Event, writers)
	for w := range plans {
		plans[w] = c.newEvents(perW)
		want = append(want, plans[w]...)
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w, plan := range plans {
		wg.Go(func() {
			for i, e := range plan {
				if i == perW/2 {
					if err := col.await(c.ctx, sub, atLeast(k)); err != nil {
						errs[w] = fmt.Errorf("waiting for the first %d events: %w", k, err)
						return
					}
				}
				res, err := s.Append(c.ctx, streams[w], rev[w], e)
				if err != nil {
					errs[w] = fmt.Errorf("Append(%q, %s): %w", streams[w], rev[w], err)
					return
				}
				rev[w] = eventstore.Exact(res.NextRevision)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// A last event after all the others: once it is delivered, any repeat
	// of an earlier one would have been delivered too.
	sentinel := c.newEvent()
	c.append(s, c.stream("sentinel"), eventstore.NoStream, sentinel)
	want = append(want, sentinel)
	if err := col.await(c.ctx, sub, hasID(sentinel.ID)); err != nil {
		t.Fatalf("waiting for the last event: %v", err)
	}
	sub.cancel()
	if err := sub.wait(t, promptly, "its context was cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe after cancel: got %v, want context.Canceled", err)
	}

	got := col.events()
	if len(got) != len(want) {
		t.Fatalf("Subscribe delivered %d of the case's events, want %d", len(got), len(want))
	}
	byID := make(map[string]aggregate.Event, len(want))
	for _, e := range want {
		byID[e.ID] = e
	}
	nextRev := map[string]uint64{}
	for _, e := range got {
		w, ok := byID[e.ID]
		if !ok {
			t.Fatalf("Subscribe delivered event %s that the case never appended", e.ID)
		}
		checkEvent(t, e, e.Stream, nextRev[e.Stream], w)
		nextRev[e.Stream]++
	}
}

// testSubscribeFromMiddle: a subscription starts strictly after its
// position.
func testSubscribeFromMiddle(t *testing.T, h Harness) {
	needSubscribe(t, h)
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("middle")
	events := c.newEvents(10)
	var results []eventstore.AppendResult
	for i, e := range events {
		results = append(results, c.append(s, stream, eventstore.ExpectedRevision(i-1), e))
	}
	mid := results[3].Position
	col := newCollector(t, c.own, mid) // fails on anything at or before mid
	sub := c.subscribe(c.ctx, s, mid, col.handle)
	if err := col.await(c.ctx, sub, hasID(events[9].ID)); err != nil {
		t.Fatalf("waiting for the last event: %v", err)
	}
	sub.cancel()
	if err := sub.wait(t, promptly, "its context was cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe after cancel: got %v, want context.Canceled", err)
	}
	got := col.events()
	if len(got) != 6 {
		t.Fatalf("Subscribe after revision 3: %d events, want revisions 4 to 9", len(got))
	}
	for i, e := range got {
		checkEvent(t, e, stream, uint64(4+i), events[4+i])
		if e.Position != results[4+i].Position {
			t.Fatalf("revision %d delivered at %s, appended at %s", 4+i, e.Position, results[4+i].Position)
		}
	}
}

// testSubscribeHandlerError: a handler's error ends Subscribe with it.
func testSubscribeHandlerError(t *testing.T, h Harness) {
	needSubscribe(t, h)
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	c.append(s, c.stream("handlererr"), eventstore.NoStream, c.newEvent())
	errStop := errors.New("storetest: handler says stop")
	var calls atomic.Int32
	sub := c.subscribe(c.ctx, s, from, func(context.Context, []eventstore.RecordedEvent) error {
		calls.Add(1)
		return errStop
	})
	err := sub.wait(t, h.Timeout, "its handler returned an error")
	if !errors.Is(err, errStop) {
		t.Fatalf("Subscribe with a failing handler: got %v, want the handler's error", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times after returning an error, want once", n)
	}
}

// testSubscribeCancel: cancelling the context ends Subscribe with
// ctx.Err(), promptly, whatever it is doing.
func testSubscribeCancel(t *testing.T, h Harness) {
	needSubscribe(t, h)
	c := start(t, h)
	s := c.openStore()

	t.Run("Live", func(t *testing.T) {
		c := c.in(t)
		from := c.from(s)
		e := c.newEvent()
		col := newCollector(t, c.own, from)
		sub := c.subscribe(c.ctx, s, from, col.handle)
		c.append(s, c.stream("cancellive"), eventstore.NoStream, e)
		if err := col.await(c.ctx, sub, hasID(e.ID)); err != nil {
			t.Fatalf("waiting for the event: %v", err)
		}
		// Nothing more to deliver: Subscribe is waiting for new events.
		sub.cancel()
		if err := sub.wait(t, promptly, "its context was cancelled"); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("InHandler", func(t *testing.T) {
		c := c.in(t)
		from := c.from(s)
		stream := c.stream("cancelhandler")
		c.append(s, stream, eventstore.NoStream, c.newEvents(3)...)
		var sub *subscription
		ready := make(chan struct{})
		sub = c.subscribe(c.ctx, s, from, func(context.Context, []eventstore.RecordedEvent) error {
			<-ready
			sub.cancel()
			return nil
		})
		close(ready)
		if err := sub.wait(t, h.Timeout, "its context was cancelled by its handler"); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("Before", func(t *testing.T) {
		c := c.in(t)
		ctx, cancel := context.WithCancel(c.ctx)
		cancel()
		sub := c.subscribe(ctx, s, c.from(s), func(context.Context, []eventstore.RecordedEvent) error { return nil })
		if err := sub.wait(t, promptly, "being called with a cancelled context"); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

// testSubscribeUnsupported: a store that declares no Subscribe says so at
// once, with an error matching errors.ErrUnsupported, rather than block or
// deliver nothing.
func testSubscribeUnsupported(t *testing.T, h Harness) {
	if h.Features.Subscribe {
		t.Skip("Features.Subscribe is true: the Subscribe cases cover it")
	}
	c := start(t, h)
	s := c.openStore()
	c.append(s, c.stream("unsupported"), eventstore.NoStream, c.newEvent())
	sub := c.subscribe(c.ctx, s, eventstore.Start, func(context.Context, []eventstore.RecordedEvent) error {
		t.Error("Subscribe called its handler, but the harness says it is not implemented")
		return nil
	})
	if err := sub.wait(t, promptly, "the harness says it is not implemented"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Subscribe: got %v, want an error matching errors.ErrUnsupported", err)
	}
}
