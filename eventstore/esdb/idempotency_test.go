package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// deliver records ev in stream the way receiptd's webhook layer does,
// following the Store contract: read the stream, decide (an event with the
// same id already there is a duplicate), append with the expected revision
// just read; after a wrong revision or an outcome that is unknown, read and
// decide again. It returns the position of the event in the stream and
// whether it was already there.
func deliver(ctx context.Context, s eventstore.Store, stream string, ev aggregate.Event) (eventstore.Position, bool, error) {
	const attempts = 8
	var last error
	for range attempts {
		read, err := s.ReadStream(ctx, stream, 0, 0)
		if err != nil {
			if errors.Is(err, eventstore.ErrUnavailable) {
				last = err
				continue
			}
			return eventstore.Position{}, false, err
		}
		for _, e := range read {
			if e.ID == ev.ID {
				return e.Position, true, nil
			}
		}
		res, err := s.Append(ctx, stream, eventstore.ExpectedAfter(read), ev)
		switch {
		case err == nil:
			return res.Position, false, nil
		case errors.Is(err, eventstore.ErrWrongRevision), errors.Is(err, eventstore.ErrUnavailable):
			last = err // moved, or maybe written: read and decide again
		default:
			return eventstore.Position{}, false, err
		}
	}
	return eventstore.Position{}, false, fmt.Errorf("after %d attempts: %w", attempts, last)
}

// TestRetryAfterLostResponse: an append whose response is lost after the
// server committed it is ambiguous. A caller that follows the contract (read,
// decide, append with the revision it read) never writes the event twice,
// although the double, like a server that has forgotten the event ids,
// does not recognise the retry by its event id.
func TestRetryAfterLostResponse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startDouble(t, esdbdouble.Options{})
	s := open(t, d.URL(), esdb.Options{})

	t.Run("Ambiguous", func(t *testing.T) {
		stream := "receipt-test.ambiguous"
		ev := newEvent(1)
		d.DropAppendResponses(1)
		_, err := s.Append(ctx, stream, eventstore.NoStream, ev)
		if !errors.Is(err, eventstore.ErrUnavailable) || errors.Is(err, eventstore.ErrWrongRevision) {
			t.Fatalf("Append whose response was lost: got %v, want ErrUnavailable", err)
		}
		if got := d.StreamEvents(stream); len(got) != 1 || got[0].ID != ev.ID {
			t.Fatalf("the double holds %d events, want the one committed before the response was lost", len(got))
		}
	})

	t.Run("ReadDecideAppend", func(t *testing.T) {
		stream := "receipt-test.retried"
		ev := newEvent(2)
		d.DropAppendResponses(1)
		pos, dup, err := deliver(ctx, s, stream, ev)
		if err != nil {
			t.Fatalf("deliver: %v", err)
		}
		got := d.StreamEvents(stream)
		if len(got) != 1 {
			t.Fatalf("stream holds %d events after a retried delivery, want 1", len(got))
		}
		if !dup || pos.Commit != got[0].Position {
			t.Fatalf("the retry found duplicate=%v at %s, want the committed event at %d", dup, pos, got[0].Position)
		}
	})

	t.Run("StaleExpectedRevision", func(t *testing.T) {
		// A writer that read the stream before the ambiguous append and
		// retries with what it read is refused: nothing is written twice.
		stream := "receipt-test.stale"
		ev := newEvent(3)
		read, err := s.ReadStream(ctx, stream, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		d.DropAppendResponses(1)
		if _, err := s.Append(ctx, stream, eventstore.ExpectedAfter(read), ev); !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("first append: got %v, want ErrUnavailable", err)
		}
		_, err = s.Append(ctx, stream, eventstore.ExpectedAfter(read), ev)
		var wre *eventstore.WrongRevisionError
		if !errors.As(err, &wre) || wre.Actual != eventstore.Exact(0) || wre.Expected != eventstore.NoStream {
			t.Fatalf("retry with the stale expected revision: got %v, want a wrong revision (stream at 0)", err)
		}
		if got := d.StreamEvents(stream); len(got) != 1 {
			t.Fatalf("stream holds %d events, want 1", len(got))
		}
	})

	t.Run("ConcurrentProcesses", func(t *testing.T) {
		// Two receiptd processes (two Stores) get the same delivery many
		// times at once while responses are being lost.
		other := open(t, d.URL(), esdb.Options{})
		stream := "receipt-test.concurrent"
		ev := newEvent(4)
		d.DropAppendResponses(3)
		const workers = 12
		type outcome struct {
			pos eventstore.Position
			err error
		}
		out := make([]outcome, workers)
		var wg sync.WaitGroup
		for i := range workers {
			store := eventstore.Store(s)
			if i%2 == 1 {
				store = other
			}
			wg.Go(func() {
				pos, _, err := deliver(ctx, store, stream, ev)
				out[i] = outcome{pos, err}
			})
		}
		wg.Wait()
		got := d.StreamEvents(stream)
		if len(got) != 1 {
			t.Fatalf("stream holds %d events after %d concurrent deliveries of one event, want 1", len(got), workers)
		}
		for i, o := range out {
			if o.err != nil {
				t.Errorf("delivery %d: %v", i, o.err)
			} else if o.pos.Commit != got[0].Position {
				t.Errorf("delivery %d: position %s, want %d", i, o.pos, got[0].Position)
			}
		}
	})

	t.Run("BlindRetryDuplicates", func(t *testing.T) {
		// What the contract prevents: a blind retry with Any writes the
		// event again when the server does not recognise its id.
		stream := "receipt-test.blind"
		ev := newEvent(5)
		d.DropAppendResponses(1)
		if _, err := s.Append(ctx, stream, eventstore.Any, ev); !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("first append: got %v, want ErrUnavailable", err)
		}
		if _, err := s.Append(ctx, stream, eventstore.Any, ev); err != nil {
			t.Fatalf("blind retry: %v", err)
		}
		if got := d.StreamEvents(stream); len(got) != 2 {
			t.Fatalf("stream holds %d events after a blind retry, want 2 (the duplicate the contract avoids)", len(got))
		}
	})
}
