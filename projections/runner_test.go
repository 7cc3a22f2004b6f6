package projections

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
)

func batchOf(n int) []eventstore.RecordedEvent {
	return make([]eventstore.RecordedEvent, n)
}

// The applier takes every batch queued while it was busy at once, within
// the bounds; a full queue holds the subscription back until the applier
// takes; an applier that stopped fails the subscription's next push.
func TestGroupQueue(t *testing.T) {
	ctx := context.Background()
	q := newGroupQueue(10, 1<<20)
	for range 3 {
		if err := q.push(ctx, batchOf(3), nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.take(ctx)
	if err != nil || len(got) != 3 {
		t.Fatalf("take: %d batches, %v; want the 3 queued", len(got), err)
	}

	// 3+3+3 events queued: a fourth batch of 3 waits for a take.
	for range 3 {
		if err := q.push(ctx, batchOf(3), nil); err != nil {
			t.Fatal(err)
		}
	}
	pushed := make(chan error, 1)
	go func() { pushed <- q.push(ctx, batchOf(3), nil) }()
	select {
	case err := <-pushed:
		t.Fatalf("a push past the bound returned %v before a take", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got, err := q.take(ctx); err != nil || len(got) != 3 {
		t.Fatalf("take: %d batches, %v", len(got), err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if got, err := q.take(ctx); err != nil || len(got) != 1 {
		t.Fatalf("take: %d batches, %v", len(got), err)
	}

	// One batch larger than the bound goes through alone.
	if err := q.push(ctx, batchOf(25), nil); err != nil {
		t.Fatal(err)
	}
	go func() { pushed <- q.push(ctx, batchOf(1), nil) }()
	if got, err := q.take(ctx); err != nil || len(got) != 1 || len(got[0].events) != 25 {
		t.Fatalf("take after a large batch: %d batches, %v", len(got), err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if got, err := q.take(ctx); err != nil || len(got) != 1 || len(got[0].events) != 1 {
		t.Fatalf("take: %d batches, %v", len(got), err)
	}

	boom := errors.New("boom")
	q.fail(boom)
	if err := q.push(ctx, batchOf(1), nil); !errors.Is(err, boom) {
		t.Errorf("push after the applier failed: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	empty := newGroupQueue(10, 1<<20)
	if _, err := empty.take(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("take on an empty queue, context done: %v", err)
	}
}

// oneByOne delivers a log to a subscriber one event per batch, as fast as
// the subscriber takes them.
type oneByOne struct {
	sliceStore
}

func (s *oneByOne) Subscribe(ctx context.Context, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error {
	for _, e := range s.events {
		if !after.Less(e.Position) {
			continue
		}
		if err := handle(ctx, []eventstore.RecordedEvent{e}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// A Runner fed one event per batch groups what queues while it applies,
// and ends with the read models a rebuild of the log gives (the digests
// of testdata/v1log, see TestDigestsOfAnOlderVersionsLog).
func TestRunnerGroupsBatches(t *testing.T) {
	events, want := v1Log(t)
	d, err := Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := NewRunner(&oneByOne{sliceStore{events: events}}, d, nil)
	r.MaxGroupEvents = 50 // several groups, of several batches each
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := d.WaitFor(wctx, events[len(events)-1].Position.Commit); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	got, _, err := d.Summaries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%+v, want %+v", got[i], want[i])
		}
	}
}

// A Runner starting on empty read models builds them in bulk (as a
// rebuild does) up to the log's head, then follows the log from there;
// the read models are the ones applying the log gives (the digests of
// testdata/v1log).
func TestRunnerBuildsEmptyReadModelsInBulk(t *testing.T) {
	events, want := v1Log(t)
	d, err := Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The store's head is two thirds of the way: the rest is followed.
	store := &oneByOne{sliceStore{events: events}}
	headed := &headAt{oneByOne: store, head: events[len(events)*2/3].Position}
	var logs bytes.Buffer
	r := NewRunner(headed, d, slog.New(slog.NewTextHandler(&logs, nil)))
	r.BulkFrom = 1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := d.WaitFor(wctx, events[len(events)-1].Position.Commit); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "built the empty read models in bulk") || !strings.Contains(logs.String(), "position="+headed.head.String()) {
		t.Errorf("no bulk build to %s logged:\n%s", headed.head, logs.String())
	}
	got, _, err := d.Summaries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%+v, want %+v", got[i], want[i])
		}
	}
}

// headAt is a store whose head is at head (a log that grows after it).
type headAt struct {
	*oneByOne
	head eventstore.Position
}

func (h *headAt) Head(context.Context) (eventstore.Position, error) { return h.head, nil }

// chanStore delivers to a subscriber the batches sent on batches, as they
// come.
type chanStore struct {
	sliceStore
	batches chan []eventstore.RecordedEvent
}

func (s *chanStore) Subscribe(ctx context.Context, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error {
	for {
		select {
		case b := <-s.batches:
			if err := handle(ctx, b); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// While the log is busy (the last group held several batches) a Runner
// starts its next transaction no sooner than MinGroupInterval after the
// last one started; a lone batch after that is applied at once.
func TestRunnerWaitsForAGroupWhileBusy(t *testing.T) {
	events, _ := v1Log(t)
	d, err := Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const interval = 400 * time.Millisecond
	store := &chanStore{sliceStore: sliceStore{events: events}, batches: make(chan []eventstore.RecordedEvent)}
	r := NewRunner(store, d, nil)
	r.BulkFrom = 0
	r.MinGroupInterval = interval
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	send := func(i int) { store.batches <- events[i : i+1] }
	applied := func(i int) time.Time {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := d.WaitFor(wctx, events[i].Position.Commit); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	// Batches queued while a transaction runs (held here by the apply
	// lock) make a group of several batches: the log is busy. That group
	// starts after busySince.
	busySince := time.Now()
	d.applyMu.Lock()
	for i := range 6 {
		send(i)
	}
	d.applyMu.Unlock()
	applied(5)
	send(6)
	if took := applied(6).Sub(busySince); took < interval {
		t.Errorf("a batch after a busy group was applied %v after it started, want at least %v", took, interval)
	}
	// That group held one batch: the next is applied at once.
	sent := time.Now()
	send(7)
	if took := applied(7).Sub(sent); took >= interval {
		t.Errorf("a lone batch on a quiet log was applied after %v", took)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
