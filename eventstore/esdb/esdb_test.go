package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
	"github.com/receiptd/receiptd/eventstore/storetest"
)

// testCategory is the category of the conformance suite's streams
// ("storetest-{name}.{tag}").
const testCategory = "storetest"

// startDouble serves a fresh double for the test and stops it at cleanup.
func startDouble(t testing.TB, opts esdbdouble.Options) *esdbdouble.StreamsDouble {
	t.Helper()
	d := esdbdouble.New(opts)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// open opens a Store on url for the test and closes it at cleanup.
func open(t testing.TB, url string, opts esdb.Options) *esdb.Store {
	t.Helper()
	if opts.Categories == nil {
		opts.Categories = []string{testCategory}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := esdb.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformanceDouble runs the conformance suite against the in-process
// double of the KurrentDB Streams API, a fresh one per case.
func TestConformanceDouble(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewLog: func(t *testing.T) storetest.OpenFunc {
			d := startDouble(t, esdbdouble.Options{})
			return func(ctx context.Context) (eventstore.Store, error) {
				return esdb.Open(ctx, d.URL(), esdb.Options{Categories: []string{testCategory}})
			}
		},
		// The double's own system events are not receiptd's: the Store's
		// view of a fresh double is empty.
		Features: storetest.Features{FreshLog: true, Reopen: true, Subscribe: true},
	})
}

// TestConformanceServer runs the conformance suite against the KurrentDB
// server of RECEIPTD_KURRENTDB_URL, shared with whatever else it holds.
func TestConformanceServer(t *testing.T) {
	url := os.Getenv("RECEIPTD_KURRENTDB_URL")
	if url == "" {
		t.Skip("RECEIPTD_KURRENTDB_URL not set: no KurrentDB server on this machine (no container engine, no package); the in-process test double covers the adapter")
	}
	storetest.Run(t, storetest.Harness{
		NewLog: func(t *testing.T) storetest.OpenFunc {
			return func(ctx context.Context) (eventstore.Store, error) {
				return esdb.Open(ctx, url, esdb.Options{Categories: []string{testCategory}})
			}
		},
		Features: storetest.Features{Reopen: true, Subscribe: true},
	})
}

// newEvent returns an event with a random UUID.
func newEvent(n int) aggregate.Event {
	id := uuid.NewString()
	return aggregate.Event{
		ID:       id,
		Type:     "test.appended.v1",
		Data:     fmt.Appendf(nil, `{"n":%d,"id":%q}`, n, id),
		Metadata: []byte(`{"source":"test"}`),
	}
}

// collector is a Subscribe handler that keeps what it is given and fails
// the test on a repeat or a position that does not increase.
type collector struct {
	t       testing.TB
	mu      sync.Mutex
	last    eventstore.Position
	got     []eventstore.RecordedEvent
	ids     map[string]bool
	changed chan struct{}
}

func newCollector(t testing.TB, after eventstore.Position) *collector {
	return &collector{t: t, last: after, ids: map[string]bool{}, changed: make(chan struct{})}
}

func (k *collector) handle(_ context.Context, batch []eventstore.RecordedEvent) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range batch {
		if !k.last.Less(e.Position) {
			k.t.Errorf("delivered %s@%d at %s after %s", e.Stream, e.Revision, e.Position, k.last)
			return errors.New("bad delivery")
		}
		if k.ids[e.ID] {
			k.t.Errorf("delivered %s twice", e.ID)
			return errors.New("bad delivery")
		}
		k.last, k.ids[e.ID] = e.Position, true
		k.got = append(k.got, e)
	}
	close(k.changed)
	k.changed = make(chan struct{})
	return nil
}

// await waits until n events were collected.
func (k *collector) await(ctx context.Context, n int) error {
	for {
		k.mu.Lock()
		got, ch := len(k.got), k.changed
		k.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("collected %d of %d events: %w", got, n, ctx.Err())
		}
	}
}

func (k *collector) events() []eventstore.RecordedEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), k.got...)
}

// subscribe runs s.Subscribe in a goroutine until the test ends; the
// returned channel yields its error.
func subscribe(t testing.TB, s eventstore.Store, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) (context.CancelFunc, <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(ctx, after, handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(5 * time.Second):
			t.Errorf("Subscribe still running 5s after its context was cancelled")
		}
	})
	return cancel, errc
}

// TestAppendRefusedBeforeTheServer: requests the Store refuses itself, with
// ErrInvalid, and nothing written.
func TestAppendRefusedBeforeTheServer(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{})
	s := open(t, d.URL(), esdb.Options{MaxAppendBytes: 1000})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good := newEvent(0)
	with := func(f func(*aggregate.Event)) aggregate.Event {
		e := newEvent(0)
		f(&e)
		return e
	}
	for _, tc := range []struct {
		name     string
		stream   string
		expected eventstore.ExpectedRevision
		events   []aggregate.Event
	}{
		{"NotAUUID", "receipt-test.x", eventstore.Any, []aggregate.Event{with(func(e *aggregate.Event) { e.ID = "delivery-1" })}},
		{"UpperCaseUUID", "receipt-test.x", eventstore.Any, []aggregate.Event{with(func(e *aggregate.Event) { e.ID = strings.ToUpper(e.ID) })}},
		{"NilUUID", "receipt-test.x", eventstore.Any, []aggregate.Event{with(func(e *aggregate.Event) { e.ID = uuid.Nil.String() })}},
		{"NoType", "receipt-test.x", eventstore.Any, []aggregate.Event{with(func(e *aggregate.Event) { e.Type = "" })}},
		{"SystemType", "receipt-test.x", eventstore.Any, []aggregate.Event{with(func(e *aggregate.Event) { e.Type = "$metadata" })}},
		{"SystemStream", "$all", eventstore.Any, []aggregate.Event{good}},
		{"LongStream", strings.Repeat("x", 2000), eventstore.Any, []aggregate.Event{good}},
		{"BadExpected", "receipt-test.x", eventstore.ExpectedRevision(-3), []aggregate.Event{good}},
		{"TooLarge", "receipt-test.x", eventstore.Any, []aggregate.Event{good, with(func(e *aggregate.Event) { e.Data = make([]byte, 1000) })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.stream, tc.expected, tc.events...)
			if !errors.Is(err, eventstore.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if evs := d.StreamEvents("receipt-test.x"); len(evs) != 0 {
		t.Fatalf("refused appends wrote %d events", len(evs))
	}
}

// TestAppendPositionFromTheServer: the position an Append returns is the
// one the server answered, that of the write's last event, with no read
// back, for one event as for many.
func TestAppendPositionFromTheServer(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{})
	s := open(t, d.URL(), esdb.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const stream = "receipt-test.position"
	for _, n := range []int{1, 3} {
		reads := d.Reads()
		events := make([]aggregate.Event, n)
		for i := range events {
			events[i] = newEvent(i)
		}
		res, err := s.Append(ctx, stream, eventstore.Any, events...)
		if err != nil {
			t.Fatal(err)
		}
		if r := d.Reads() - reads; r != 0 {
			t.Errorf("append of %d events read the server %d times, want none", n, r)
		}
		held := d.StreamEvents(stream)
		last := held[len(held)-1]
		if res.NextRevision != last.Revision || res.Position != (eventstore.Position{Commit: last.Position, Prepare: last.Position}) {
			t.Fatalf("append of %d events: revision %d at %s, want the last event's: %d at %d", n, res.NextRevision, res.Position, last.Revision, last.Position)
		}
	}
}
