package bolt_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// follow subscribes from after and sends every event it is given to the
// returned channel (unbuffered: the handler waits for the test to take it,
// so a test can hold a subscriber back). It stops at the test's end.
func follow(t *testing.T, s *bolt.Store, after eventstore.Position) <-chan eventstore.RecordedEvent {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan eventstore.RecordedEvent)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.Subscribe(ctx, after, func(ctx context.Context, batch []eventstore.RecordedEvent) error {
			for _, e := range batch {
				select {
				case ch <- e:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

// TestSubscribeFromTail: a subscriber that has caught up gets every new
// event from the tail of recent commits, without reading the file.
func TestSubscribeFromTail(t *testing.T) {
	s, _ := openStore(t, bolt.Options{})
	ctx := deadline(t)
	if _, err := s.Append(ctx, "receipt-test.before", eventstore.NoStream, event(0), event(1)); err != nil {
		t.Fatal(err)
	}
	got := follow(t, s, eventstore.Start)
	for i := range 2 {
		if e := recv(t, ctx, got, "a catch-up event"); e.ID != event(i).ID {
			t.Fatalf("catch-up event %d: %s", i, e.ID)
		}
	}
	for i := 2; i < 102; i++ {
		if _, err := s.Append(ctx, "receipt-test.live", eventstore.ExpectedRevision(i-3), event(i)); err != nil {
			t.Fatal(err)
		}
		e := recv(t, ctx, got, "a live event")
		if e.ID != event(i).ID || e.Revision != uint64(i-2) || e.Position.Commit != uint64(i+1) || string(e.Data) != string(event(i).Data) {
			t.Fatalf("live event %d: got %+v", i, e)
		}
	}
	// The two appended before it subscribed were still in the tail too.
	if st := s.Stats(); st.TailEvents != 102 || st.FileEvents != 0 {
		t.Fatalf("stats %+v: want every event from the tail", st)
	}
}

// TestSubscribeBehindTail: a subscriber held back while far more than the
// tail holds is appended does not hold the appends back, and then reads
// what the tail dropped from the file, with no gap and no repeat.
func TestSubscribeBehindTail(t *testing.T) {
	s, _ := openStore(t, bolt.Options{TailBytes: 2048})
	ctx := deadline(t)
	got := follow(t, s, eventstore.Start)
	if _, err := s.Append(ctx, "receipt-test.slow", eventstore.NoStream, event(0)); err != nil {
		t.Fatal(err)
	}
	// The subscriber now waits in its handler, holding event 0.
	const n = 300
	for i := 1; i < n; i++ {
		if _, err := s.Append(ctx, "receipt-test.slow", eventstore.ExpectedRevision(i-1), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if e := recv(t, ctx, got, "an event"); e.ID != event(i).ID || e.Position.Commit != uint64(i+1) {
			t.Fatalf("event %d: got %s at %s", i, e.ID, e.Position)
		}
	}
	if st := s.Stats(); st.FileEvents == 0 || st.TailEvents+st.FileEvents != n {
		t.Fatalf("stats %+v: want %d events, some of them from the file", st, n)
	}
}

// TestSubscribeAfterFailedCommit: a commit that fails may still be in the
// file; the tail is emptied, and a live subscriber gets from the file
// exactly what a reader finds there.
func TestSubscribeAfterFailedCommit(t *testing.T) {
	// 4 KiB pages: the small append after the failed ones must fit in
	// what the 64 KiB blobs left of the 1 MiB; with 8 KiB pages (the
	// default for new files) the few pages it dirties sometimes did not.
	s, _ := openStore(t, bolt.WithPageSize(bolt.Options{MaxSize: 1 << 20}, 4096))
	ctx := deadline(t)
	got := follow(t, s, eventstore.Start)
	data := []byte(`{"blob":"` + strings.Repeat("x", 64<<10) + `"}`)
	var err error
	n := 0
	for ; n < 64 && err == nil; n++ {
		e := event(n)
		e.Data = data
		_, err = s.Append(ctx, "receipt-test.full", eventstore.Any, e)
	}
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append past MaxSize: %v", err)
	}
	all, err := s.ReadAll(ctx, eventstore.Start, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range all {
		if e := recv(t, ctx, got, "an event"); e.ID != want.ID || e.Position != want.Position {
			t.Fatalf("event %d: got %s at %s, the file has %s at %s", i, e.ID, e.Position, want.ID, want.Position)
		}
	}
	// And then live again, from the tail.
	if _, err := s.Append(ctx, "receipt-test.small", eventstore.NoStream, event(1000)); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, ctx, got, "the event after"); e.ID != event(1000).ID {
		t.Fatalf("got %s", e.ID)
	}
}
