package feed_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/internal/feeddouble"
)

// ev is a feed event of kind about user u of source src.
func ev(kind, src, u string) feed.Event {
	return feed.Event{ID: feed.EventID(kind, src, u, fmt.Sprint(time.Now().UnixNano())), Kind: kind, Source: src, UserIDs: []string{u}, UserID: u, ViewOf: feed.ViewBalance, View: []byte(`{}`)}
}

// fill appends n log events to src from log position from, each causing
// one to three feed events, some about no one; it returns every feed event.
func fill(src *feeddouble.Source, from, n uint64) []feed.Event {
	var all []feed.Event
	for p := from; p < from+n; p++ {
		switch p % 4 {
		case 0:
			src.Advance(p) // a log event with no feed event
		case 1:
			all = append(all, src.Append(p, ev(feed.KindBalanceChanged, "reewild", "u1"))...)
		case 2:
			all = append(all, src.Append(p, ev(feed.KindReceiptProgressed, "reewild", "u2"), ev(feed.KindReceiptCompleted, "reewild", "u2"), ev(feed.KindBalanceChanged, "reewild", "u2"))...)
		case 3:
			all = append(all, src.Append(p, ev(feed.KindEntityChanged, "reap", "u1"))...)
		}
	}
	return all
}

// collector is a subscriber that records what it is sent.
type collector struct {
	mu          sync.Mutex
	events      []feed.Event
	checkpoints []uint64
	last        uint64
	stopAfter   int // cancel after this many events (0: never)
	cancel      context.CancelFunc
}

func (c *collector) send(e *feed.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Position <= c.last {
		return fmt.Errorf("position %d after %d: a repeat or out of order", e.Position, c.last)
	}
	c.events = append(c.events, *e)
	c.last = e.Position
	if c.stopAfter > 0 && len(c.events) == c.stopAfter {
		c.cancel()
	}
	return nil
}

func (c *collector) checkpoint(p uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p <= c.last {
		return fmt.Errorf("checkpoint %d after %d", p, c.last)
	}
	c.checkpoints = append(c.checkpoints, p)
	c.last = p
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func positions(evs []feed.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

func equalPositions(t *testing.T, got, want []feed.Event) {
	t.Helper()
	g, w := positions(got), positions(want)
	if len(g) != len(w) {
		t.Fatalf("got %d events, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("event %d: position %d, want %d", i, g[i], w[i])
		}
	}
}

// waitCount polls until c holds n events (a deadline, not a sleep).
func waitCount(t *testing.T, c *collector, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d", c.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCatchUpThenLive: a subscriber gets the events already in the feed,
// then those appended while it runs, each once and in position order, with
// batches smaller than the feed.
func TestCatchUpThenLive(t *testing.T) {
	src := feeddouble.New()
	want := fill(src, 1, 40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &collector{}
	done := make(chan error, 1)
	go func() {
		done <- feed.Subscribe(ctx, src, feed.SubscribeOptions{Batch: 7}, c.send, c.checkpoint)
	}()
	waitCount(t, c, len(want))
	want = append(want, fill(src, 41, 40)...)
	waitCount(t, c, len(want))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe ended with %v, want context.Canceled", err)
	}
	equalPositions(t, c.events, want)
}

// TestKilledAndResumed: a consumer that stops at random points and
// resumes after the last position it processed sees every event exactly
// once, in order, while the feed grows meanwhile.
func TestKilledAndResumed(t *testing.T) {
	src := feeddouble.New()
	want := fill(src, 1, 30)
	var got []feed.Event
	var after uint64
	next := uint64(31)
	for round := 0; len(got) < len(want) || round < 6; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		c := &collector{stopAfter: 1 + round%5, cancel: cancel, last: after}
		err := feed.Subscribe(ctx, src, feed.SubscribeOptions{After: after, Batch: 4}, c.send, c.checkpoint)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: %v", round, err)
		}
		got = append(got, c.events...)
		after = c.last
		if round < 6 {
			want = append(want, fill(src, next, 5)...)
			next += 5
		}
		if round > 1000 {
			t.Fatal("never caught up")
		}
	}
	equalPositions(t, got, want)
}

// TestFilterAndCheckpoints: a subscriber filtering for one kind gets only
// those, and while the feed passes other events it is sent checkpoints
// past them, so that resuming from the last message reads none of them
// again.
func TestFilterAndCheckpoints(t *testing.T) {
	src := feeddouble.New()
	all := fill(src, 1, 20)
	var want []feed.Event
	for _, e := range all {
		if e.Kind == feed.KindReceiptCompleted && e.Source == "reewild" {
			want = append(want, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &collector{}
	done := make(chan error, 1)
	go func() {
		done <- feed.Subscribe(ctx, src, feed.SubscribeOptions{
			Filter:          feed.Filter{Kinds: []string{feed.KindReceiptCompleted}, Sources: []string{"reewild"}},
			CheckpointEvery: 20 * time.Millisecond,
		}, c.send, c.checkpoint)
	}()
	waitCount(t, c, len(want))
	// Only filtered-out events now: a checkpoint must come, at the head.
	src.Append(21, ev(feed.KindBalanceChanged, "reewild", "u9"))
	src.Advance(22)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		last := c.last
		c.mu.Unlock()
		if last == src.FeedHead() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last message at %d, head %d: no checkpoint", last, src.FeedHead())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	equalPositions(t, c.events, want)
	if len(c.checkpoints) == 0 {
		t.Fatal("no checkpoint")
	}
}

// TestUserFilter: a user's subscription gets only events naming them, of
// their sources.
func TestUserFilter(t *testing.T) {
	f := feed.Filter{User: "u1", UserSources: []string{"reewild"}}
	for _, tc := range []struct {
		e    feed.Event
		want bool
	}{
		{ev(feed.KindBalanceChanged, "reewild", "u1"), true},
		{ev(feed.KindBalanceChanged, "reewild", "u2"), false},
		{ev(feed.KindEntityChanged, "reap", "u1"), false},
		{feed.Event{Kind: feed.KindEntityChanged, Source: "reewild"}, false},
	} {
		if got := f.Match(&tc.e); got != tc.want {
			t.Errorf("%s of %s about %v: match %v, want %v", tc.e.Kind, tc.e.Source, tc.e.UserIDs, got, tc.want)
		}
	}
}

// TestManySubscribers: 100 concurrent subscribers, started at different
// positions while the feed grows, each see every event after their start
// once and in order; a slow one (blocking in send) holds up none of the
// others.
func TestManySubscribers(t *testing.T) {
	src := feeddouble.New()
	all := fill(src, 1, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 100
	cs := make([]*collector, n)
	starts := make([]uint64, n)
	var wg sync.WaitGroup
	slow := make(chan struct{})
	for i := range cs {
		c := &collector{}
		if i > 0 {
			starts[i] = all[(i*7)%len(all)].Position
		}
		c.last = starts[i]
		cs[i] = c
		send := c.send
		if i == 0 {
			send = func(e *feed.Event) error {
				select { // stuck until the others are done
				case <-slow:
				case <-ctx.Done():
					return ctx.Err()
				}
				return c.send(e)
			}
		}
		wg.Go(func() {
			feed.Subscribe(ctx, src, feed.SubscribeOptions{After: starts[i], Batch: 16}, send, c.checkpoint)
		})
	}
	all = append(all, fill(src, 51, 50)...)
	for i := 1; i < n; i++ {
		var want []feed.Event
		for _, e := range all {
			if e.Position > starts[i] {
				want = append(want, e)
			}
		}
		waitCount(t, cs[i], len(want))
		cs[i].mu.Lock()
		equalPositions(t, cs[i].events, want)
		cs[i].mu.Unlock()
	}
	close(slow)
	waitCount(t, cs[0], len(all))
	cancel()
	wg.Wait()
	equalPositions(t, cs[0].events, all)
}

// TestSubscribeSourceError: a failing read ends the subscription with the
// error.
func TestSubscribeSourceError(t *testing.T) {
	src := feeddouble.New()
	boom := errors.New("boom")
	src.FailReads(boom)
	err := feed.Subscribe(context.Background(), src, feed.SubscribeOptions{}, func(*feed.Event) error { return nil }, func(uint64) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

// deafSource is a Source that does not heed its context, as the read
// models' does not.
type deafSource struct{ *feeddouble.Source }

func (d deafSource) ReadFeed(_ context.Context, after uint64, max int) ([]feed.Event, uint64, error) {
	return d.Source.ReadFeed(context.Background(), after, max)
}

// TestSubscribeEndsWhileCatchingUp: a subscription whose context ends
// while it catches up ends then, not once caught up, over a Source and a
// send that do not heed the context (the read models, a gRPC stream's
// Send when the server's lifetime ends).
func TestSubscribeEndsWhileCatchingUp(t *testing.T) {
	src := feeddouble.New()
	all := fill(src, 1, 2000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := 0
	err := feed.Subscribe(ctx, deafSource{src}, feed.SubscribeOptions{Batch: 8}, func(*feed.Event) error {
		sent++
		if sent == 10 {
			cancel() // the server starts shutting down
		}
		return nil
	}, func(uint64) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe ended with %v, want context.Canceled", err)
	}
	if sent != 10 {
		t.Fatalf("%d of %d events sent after the context ended at the 10th", sent, len(all))
	}
}
