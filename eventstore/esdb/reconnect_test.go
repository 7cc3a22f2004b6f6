package esdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// TestSubscribeAcrossRestarts: a subscription survives the server stopping
// and starting again (twice, once for longer than the backoff cap), and
// delivers every event once, in order, resuming after the last one it
// delivered.
func TestSubscribeAcrossRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startDouble(t, esdbdouble.Options{})
	s := open(t, d.URL(), esdb.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, CallTimeout: time.Second})

	col := newCollector(t, eventstore.Start)
	_, errc := subscribe(t, s, eventstore.Start, col.handle)

	stream := "receipt-test.restarts"
	next := eventstore.NoStream
	var want []string
	write := func(n int) {
		t.Helper()
		for range n {
			ev := newEvent(len(want))
			res, err := s.Append(ctx, stream, next, ev)
			if err != nil {
				t.Fatalf("Append(%s): %v", next, err)
			}
			next = eventstore.Exact(res.NextRevision)
			want = append(want, ev.ID)
		}
	}
	// waitUp polls until an append goes through after a restart.
	waitUp := func() {
		t.Helper()
		for {
			ev := newEvent(len(want))
			res, err := s.Append(ctx, stream, next, ev)
			if err == nil {
				next = eventstore.Exact(res.NextRevision)
				want = append(want, ev.ID)
				return
			}
			if !errors.Is(err, eventstore.ErrUnavailable) {
				t.Fatalf("Append after a restart: %v, want success or ErrUnavailable", err)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the store did not come back: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	write(40)
	if err := col.await(ctx, len(want)); err != nil {
		t.Fatal(err)
	}
	for round, down := range []time.Duration{50 * time.Millisecond, 600 * time.Millisecond} {
		d.Stop()
		if _, err := s.Append(ctx, stream, next, newEvent(-1)); !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("round %d: Append while the server is down: got %v, want ErrUnavailable", round, err)
		}
		time.Sleep(down) // the outage itself, not a wait for a result
		if err := d.Restart(); err != nil {
			t.Fatal(err)
		}
		waitUp()
		write(30)
		if err := col.await(ctx, len(want)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("Subscribe returned %v across restarts", err)
	default:
	}
	got := col.events()
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.ID != want[i] || e.Revision != uint64(i) {
			t.Fatalf("event %d: got %s@%d, want %s@%d", i, e.ID, e.Revision, want[i], i)
		}
	}
}

// TestDeadlines: a server that does not answer in time gives
// ErrUnavailable (and DeadlineExceeded) after CallTimeout, or the caller's
// context error when that ends first; the same Store works once the server
// answers again.
func TestDeadlines(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{})
	const timeout = 300 * time.Millisecond
	s := open(t, d.URL(), esdb.Options{CallTimeout: timeout})
	stream := "receipt-test.deadlines"
	d.SetDelay(5 * time.Second)

	calls := map[string]func(ctx context.Context) error{
		"Append": func(ctx context.Context) error {
			_, err := s.Append(ctx, stream, eventstore.Any, newEvent(0))
			return err
		},
		"ReadStream": func(ctx context.Context) error { _, err := s.ReadStream(ctx, stream, 0, 0); return err },
		"ReadAll":    func(ctx context.Context) error { _, err := s.ReadAll(ctx, eventstore.Start, 10); return err },
		"Head":       func(ctx context.Context) error { _, err := s.Head(ctx); return err },
	}
	for name, fn := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := fn(context.Background())
			if !errors.Is(err, eventstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s against a stalled server: got %v, want ErrUnavailable and DeadlineExceeded", name, err)
			}
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("%s took %s with a call timeout of %s", name, took, timeout)
			}

			ctx, cancel := context.WithTimeout(context.Background(), timeout/3)
			defer cancel()
			err = fn(ctx)
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, eventstore.ErrUnavailable) {
				t.Errorf("%s with the caller's deadline first: got %v, want the caller's DeadlineExceeded", name, err)
			}
		})
	}

	d.SetDelay(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Append(ctx, stream, eventstore.Any, newEvent(1)); err != nil {
		t.Fatalf("Append once the server answers again: %v", err)
	}
}

// TestServerDown: with the server gone, every call fails with
// ErrUnavailable within its deadline, however many run at once; Open fails
// the same way; the Store recovers when the server is back.
func TestServerDown(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{})
	const timeout = 500 * time.Millisecond
	s := open(t, d.URL(), esdb.Options{CallTimeout: timeout})
	stream := "receipt-test.down"
	d.Stop()

	const callers = 32
	errs := make([]error, callers)
	took := make([]time.Duration, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			start := time.Now()
			if i%2 == 0 {
				_, errs[i] = s.Append(context.Background(), stream, eventstore.Any, newEvent(i))
			} else {
				_, errs[i] = s.ReadStream(context.Background(), stream, 0, 0)
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, eventstore.ErrUnavailable) {
			t.Errorf("call %d with the server down: got %v, want ErrUnavailable", i, err)
		}
		if took[i] > 2*timeout+time.Second {
			t.Errorf("call %d took %s with a call timeout of %s", i, took[i], timeout)
		}
	}

	octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ocancel()
	if _, err := esdb.Open(octx, d.URL(), esdb.Options{CallTimeout: timeout}); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("Open with the server down: got %v, want ErrUnavailable", err)
	}

	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := s.Append(ctx, stream, eventstore.Any, newEvent(-1))
		if err == nil {
			break
		}
		if !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("Append after the server is back: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the store did not recover: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
