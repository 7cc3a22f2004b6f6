package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// testAppendExpectedRevision: NoStream, Exact and Any, and that a refused
// append writes nothing.
func testAppendExpectedRevision(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("expected")
	e0, e1, e2 := c.newEvent(), c.newEvent(), c.newEvent()

	if res := c.append(s, stream, eventstore.NoStream, e0); res.NextRevision != 0 {
		t.Fatalf("first append: NextRevision %d, want 0", res.NextRevision)
	}
	_, err := s.Append(c.ctx, stream, eventstore.NoStream, c.newEvent())
	checkWrongRevision(t, err, stream, eventstore.NoStream, eventstore.Exact(0))

	_, err = s.Append(c.ctx, stream, eventstore.Exact(5), c.newEvent())
	checkWrongRevision(t, err, stream, eventstore.Exact(5), eventstore.Exact(0))

	if res := c.append(s, stream, eventstore.Exact(0), e1); res.NextRevision != 1 {
		t.Fatalf("append at Exact(0): NextRevision %d, want 1", res.NextRevision)
	}
	_, err = s.Append(c.ctx, stream, eventstore.Exact(0), c.newEvent())
	checkWrongRevision(t, err, stream, eventstore.Exact(0), eventstore.Exact(1))

	if res := c.append(s, stream, eventstore.Any, e2); res.NextRevision != 2 {
		t.Fatalf("append at Any: NextRevision %d, want 2", res.NextRevision)
	}

	got := c.readStream(s, stream, 0, 0)
	if len(got) != 3 {
		t.Fatalf("stream holds %d events after 3 accepted and 3 refused appends, want 3", len(got))
	}
	for i, want := range []aggregate.Event{e0, e1, e2} {
		checkEvent(t, got[i], stream, uint64(i), want)
	}

	// A stream that does not exist is at NoStream: Exact fails, Any creates it.
	missing := c.stream("missing")
	_, err = s.Append(c.ctx, missing, eventstore.Exact(0), c.newEvent())
	checkWrongRevision(t, err, missing, eventstore.Exact(0), eventstore.NoStream)
	if evs := c.readStream(s, missing, 0, 0); len(evs) != 0 {
		t.Fatalf("a refused append created %q with %d events", missing, len(evs))
	}
	if res := c.append(s, missing, eventstore.Any, c.newEvent()); res.NextRevision != 0 {
		t.Fatalf("append at Any to a new stream: NextRevision %d, want 0", res.NextRevision)
	}
}

// testAppendInvalid: requests the contract calls invalid.
func testAppendInvalid(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("invalid")

	if _, err := s.Append(c.ctx, stream, eventstore.NoStream); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("Append with no events: got %v, want ErrInvalid", err)
	}
	if _, err := s.Append(c.ctx, stream, eventstore.Any, []aggregate.Event{}...); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("Append with an empty slice: got %v, want ErrInvalid", err)
	}
	if _, err := s.Append(c.ctx, "", eventstore.Any, c.newEvent()); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("Append to an empty stream name: got %v, want ErrInvalid", err)
	}
	if _, err := s.ReadAll(c.ctx, eventstore.Start, 0); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("ReadAll with limit 0: got %v, want ErrInvalid", err)
	}
	if evs := c.readStream(s, stream, 0, 0); len(evs) != 0 {
		t.Fatalf("invalid appends wrote %d events", len(evs))
	}
}

// testAppendMany: one append of several events numbers them consecutively.
func testAppendMany(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("many")

	first := c.newEvents(5)
	res := c.append(s, stream, eventstore.NoStream, first...)
	if res.NextRevision != 4 {
		t.Fatalf("append of 5 events: NextRevision %d, want 4", res.NextRevision)
	}
	second := c.newEvents(3)
	res2 := c.append(s, stream, eventstore.Exact(4), second...)
	if res2.NextRevision != 7 {
		t.Fatalf("append of 3 more: NextRevision %d, want 7", res2.NextRevision)
	}
	if !res.Position.Less(res2.Position) {
		t.Fatalf("second append at %s, not after the first at %s", res2.Position, res.Position)
	}

	got := c.readStream(s, stream, 0, 0)
	want := append(first, second...)
	if len(got) != len(want) {
		t.Fatalf("stream holds %d events, want %d", len(got), len(want))
	}
	for i := range want {
		checkEvent(t, got[i], stream, uint64(i), want[i])
		if i > 0 && !got[i-1].Position.Less(got[i].Position) {
			t.Fatalf("revision %d at %s, not after revision %d at %s", i, got[i].Position, i-1, got[i-1].Position)
		}
	}
	if got[4].Position != res.Position || got[7].Position != res2.Position {
		t.Fatalf("AppendResult positions %s and %s, want those of the last events: %s and %s",
			res.Position, res2.Position, got[4].Position, got[7].Position)
	}
}

// testConcurrentSameStream: of many writers racing on one expected
// revision, exactly one wins.
func testConcurrentSameStream(t *testing.T, h Harness) {
	const writers = 32
	c := start(t, h)
	s := c.openStore()
	for _, tc := range []struct {
		name     string
		setup    int
		expected eventstore.ExpectedRevision
	}{
		{"NoStream", 0, eventstore.NoStream},
		{"Exact", 1, eventstore.Exact(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			stream := c.stream("race" + tc.name)
			if tc.setup > 0 {
				c.append(s, stream, eventstore.NoStream, c.newEvents(tc.setup)...)
			}
			type result struct {
				id  string
				res eventstore.AppendResult
				err error
			}
			events := c.newEvents(writers)
			results := make([]result, writers)
			begin := make(chan struct{})
			var wg sync.WaitGroup
			for i, ev := range events {
				wg.Go(func() {
					<-begin
					res, err := s.Append(c.ctx, stream, tc.expected, ev)
					results[i] = result{ev.ID, res, err}
				})
			}
			close(begin)
			wg.Wait()

			var winner string
			for _, r := range results {
				if r.err != nil {
					checkWrongRevision(t, r.err, stream, tc.expected, eventstore.Exact(uint64(tc.setup)))
					continue
				}
				if winner != "" {
					t.Fatalf("two appends at %s both succeeded: %s and %s", tc.expected, winner, r.id)
				}
				winner = r.id
				if r.res.NextRevision != uint64(tc.setup) {
					t.Fatalf("winner's NextRevision %d, want %d", r.res.NextRevision, tc.setup)
				}
			}
			if winner == "" {
				t.Fatalf("none of %d appends at %s succeeded", writers, tc.expected)
			}
			got := c.readStream(s, stream, 0, 0)
			if len(got) != tc.setup+1 || got[tc.setup].ID != winner {
				t.Fatalf("stream holds %d events (last %s), want %d ending with the winner %s", len(got), got[len(got)-1].ID, tc.setup+1, winner)
			}
		})
	}
}

// testConcurrentStreams: writers on distinct streams get unique, strictly
// increasing positions and gapless revisions, and ReadAll returns exactly
// what they appended.
func testConcurrentStreams(t *testing.T, h Harness) {
	const (
		writers          = 16
		appendsPerWriter = 12
	)
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)

	type appended struct {
		stream string
		events []aggregate.Event
		res    eventstore.AppendResult
	}
	// Events are made here: tcase is not safe for concurrent use.
	plans := make([][]appended, writers)
	for w := range plans {
		for i := range appendsPerWriter {
			plans[w] = append(plans[w], appended{
				stream: c.stream(fmt.Sprintf("w%d%c", w, 'a'+i%2)),
				events: c.newEvents(i%3 + 1),
			})
		}
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w, plan := range plans {
		wg.Go(func() {
			next := map[string]eventstore.ExpectedRevision{}
			for i := range plan {
				a := &plan[i]
				expected, ok := next[a.stream]
				if !ok {
					expected = eventstore.NoStream
				}
				res, err := s.Append(c.ctx, a.stream, expected, a.events...)
				if err != nil {
					errs[w] = fmt.Errorf("Append(%q, %s): %w", a.stream, expected, err)
					return
				}
				a.res = res
				next[a.stream] = eventstore.Exact(res.NextRevision)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	own := c.readOwn(s, from) // checks that positions strictly increase
	byID := make(map[string]eventstore.RecordedEvent, len(own))
	nextRev := map[string]uint64{}
	for _, e := range own {
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("ReadAll returned event %s twice", e.ID)
		}
		byID[e.ID] = e
		if e.Revision != nextRev[e.Stream] {
			t.Fatalf("ReadAll: %s@%d follows revision %d: revisions must be gapless", e.Stream, e.Revision, int64(nextRev[e.Stream])-1)
		}
		nextRev[e.Stream]++
	}
	total := 0
	for _, plan := range plans {
		for _, a := range plan {
			n := len(a.events)
			total += n
			for j, ev := range a.events {
				got, ok := byID[ev.ID]
				if !ok {
					t.Fatalf("event %s appended to %s is missing from ReadAll", ev.ID, a.stream)
				}
				checkEvent(t, got, a.stream, a.res.NextRevision-uint64(n-1-j), ev)
			}
			if last := byID[a.events[n-1].ID]; last.Position != a.res.Position {
				t.Fatalf("Append to %s returned position %s, but its last event is at %s", a.stream, a.res.Position, last.Position)
			}
		}
	}
	if len(own) != total {
		t.Fatalf("ReadAll returned %d of the case's events, want the %d appended", len(own), total)
	}
	// ReadStream agrees with ReadAll.
	for stream, n := range nextRev {
		evs := c.readStream(s, stream, 0, 0)
		if uint64(len(evs)) != n {
			t.Fatalf("ReadStream(%q) returned %d events, ReadAll %d", stream, len(evs), n)
		}
		for _, e := range evs {
			sameRecorded(t, "ReadStream vs ReadAll", e, byID[e.ID])
		}
	}
}
