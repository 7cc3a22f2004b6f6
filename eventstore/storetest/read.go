package storetest

import (
	"strings"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// testReadStream: from and limit.
func testReadStream(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	stream := c.stream("read")
	var want []aggregate.Event
	for _, n := range []int{1, 2, 3, 4} {
		evs := c.newEvents(n)
		c.append(s, stream, eventstore.ExpectedRevision(len(want)-1), evs...)
		want = append(want, evs...)
	}

	for _, tc := range []struct {
		from     uint64
		limit    int
		from2, n int // the revisions expected: from2 .. from2+n-1
	}{
		{0, 0, 0, 10},
		{0, -1, 0, 10},
		{0, 100, 0, 10},
		{0, 1, 0, 1},
		{3, 4, 3, 4},
		{8, 10, 8, 2},
		{9, 0, 9, 1},
		{10, 0, 0, 0},
		{1000, 5, 0, 0},
	} {
		got := c.readStream(s, stream, tc.from, tc.limit)
		if len(got) != tc.n {
			t.Fatalf("ReadStream(from %d, limit %d): %d events, want %d", tc.from, tc.limit, len(got), tc.n)
		}
		for i, e := range got {
			rev := tc.from2 + i
			checkEvent(t, e, stream, uint64(rev), want[rev])
			if i > 0 && !got[i-1].Position.Less(e.Position) {
				t.Fatalf("ReadStream: revision %d at %s, not after %s", rev, e.Position, got[i-1].Position)
			}
		}
	}

	got, err := s.ReadStream(c.ctx, c.stream("nonexistent"), 0, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadStream of a stream never written: %d events, error %v; want none and nil", len(got), err)
	}
}

// testRoundTrip: what is appended is read back byte for byte, by ReadStream
// and by ReadAll.
func testRoundTrip(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	stream := c.stream("roundtrip")
	big := `{"blob":"` + strings.Repeat("0123456789abcdef", 16<<10) + `"}` // 256 KiB
	want := []aggregate.Event{
		{ID: newUUID(), Type: eventType, Data: []byte(`{}`)},
		{ID: newUUID(), Type: "receipt.stage_recorded.v1", Data: []byte(`{"name":"Müller € 𝄞","esc":"\u0000\"\\\n","n":1656.54}`),
			Metadata: []byte(`{"source":"reewild","$correlationId":"c","$causationId":"d"}`)},
		{ID: newUUID(), Type: eventType, Data: []byte(big), Metadata: []byte(`{"size":"big"}`)},
		{ID: newUUID(), Type: eventType, Data: []byte("[1,2,3]\n"), Metadata: []byte(`{}`)},
	}
	// Appended one by one and all at once.
	for i, e := range want[:2] {
		c.append(s, stream, eventstore.ExpectedRevision(i-1), e)
	}
	c.append(s, stream, eventstore.Exact(1), want[2:]...)

	got := c.readStream(s, stream, 0, 0)
	if len(got) != len(want) {
		t.Fatalf("ReadStream: %d events, want %d", len(got), len(want))
	}
	for i := range want {
		checkEvent(t, got[i], stream, uint64(i), want[i])
	}
	all := c.readOwn(s, from)
	if len(all) != len(want) {
		t.Fatalf("ReadAll: %d of the case's events, want %d", len(all), len(want))
	}
	for i := range want {
		sameRecorded(t, "ReadAll vs ReadStream", all[i], got[i])
	}
}

// testBody: Body is kept apart from Data and Metadata, byte for byte,
// whatever Data holds (binary or JSON): read back by ReadStream, ReadAll
// and Subscribe, and after reopening. An event without a Body reads back
// with a nil or empty one.
func testBody(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	stream := c.stream("body")
	binary := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31) ^ seed // zeros, 0xff, every byte value
		}
		return b
	}
	want := []aggregate.Event{
		// A v2-like event: binary data and metadata, a compressed body.
		{ID: newUUID(), Type: "receipt.stage_recorded.v2", Data: binary(120, 1), Metadata: binary(90, 2), Body: binary(700, 3)},
		// A v1-like event: JSON data and metadata, no body.
		{ID: newUUID(), Type: eventType, Data: []byte(`{"raw":{"a":1}}`), Metadata: []byte(`{"source":"storetest"}`)},
		// A large body, and a body with no data or metadata.
		{ID: newUUID(), Type: eventType, Data: binary(10, 4), Body: binary(200<<10, 5)},
		{ID: newUUID(), Type: eventType, Body: binary(3, 6)},
		// An empty (not nil) body; binary data without a body.
		{ID: newUUID(), Type: eventType, Data: []byte(`{}`), Body: []byte{}},
		{ID: newUUID(), Type: eventType, Data: binary(5, 7)},
		// JSON data with a body.
		{ID: newUUID(), Type: eventType, Data: []byte(`{"n":1}`), Metadata: []byte(`{}`), Body: []byte(`{"raw": true}`)},
	}
	c.append(s, stream, eventstore.NoStream, want[0])
	c.append(s, stream, eventstore.Exact(0), want[1:]...)
	check := func(what string, s eventstore.Store) {
		t.Helper()
		got := c.readStream(s, stream, 0, 0)
		if len(got) != len(want) {
			t.Fatalf("%s: ReadStream: %d events, want %d", what, len(got), len(want))
		}
		for i := range want {
			checkEvent(t, got[i], stream, uint64(i), want[i])
		}
		all := c.readOwn(s, from)
		if len(all) != len(want) {
			t.Fatalf("%s: ReadAll: %d of the case's events, want %d", what, len(all), len(want))
		}
		for i := range want {
			sameRecorded(t, what+": ReadAll vs ReadStream", all[i], got[i])
		}
		t.Run("Subscribe_"+what, func(t *testing.T) {
			needSubscribe(t, h)
			k := newCollector(t, c.own, from)
			sub := c.in(t).subscribe(c.ctx, s, from, k.handle)
			if err := k.await(c.ctx, sub, atLeast(len(want))); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			sub.cancel()
			for i, e := range k.events() {
				sameRecorded(t, what+": Subscribe vs ReadStream", e, got[i])
			}
		})
	}
	check("appended", s)
	if h.Features.Reopen {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		check("reopened", c.openStore())
	}
}

// testReadAll: from Start or the head before, from a middle position
// (strictly after it), and the limit.
func testReadAll(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	from := c.from(s)
	streams := []string{c.stream("a"), c.stream("b")}
	var want []eventstore.AppendResult
	var events []aggregate.Event
	for i := range 10 {
		e := c.newEvent()
		want = append(want, c.append(s, streams[i%2], eventstore.ExpectedRevision(i/2-1), e))
		events = append(events, e)
	}

	own := c.readOwn(s, from)
	if len(own) != len(events) {
		t.Fatalf("ReadAll from %s: %d of the case's events, want %d", from, len(own), len(events))
	}
	for i, e := range own {
		checkEvent(t, e, streams[i%2], uint64(i/2), events[i])
		if e.Position != want[i].Position {
			t.Fatalf("event %d at %s, but its append returned %s", i, e.Position, want[i].Position)
		}
	}

	page, err := s.ReadAll(c.ctx, from, 3)
	if err != nil {
		t.Fatalf("ReadAll(%s, 3): %v", from, err)
	}
	if len(page) != 3 {
		t.Fatalf("ReadAll(%s, 3): %d events, want 3", from, len(page))
	}
	checkAfter(t, page, from)
	if h.Features.FreshLog {
		for i := range page {
			sameRecorded(t, "ReadAll from Start", page[i], own[i])
		}
	}

	mid := own[4].Position
	if rest := c.readOwn(s, mid); len(rest) != 5 {
		t.Fatalf("ReadAll after the 5th event: %d of the case's events, want the last 5", len(rest))
	} else {
		for i := range rest {
			sameRecorded(t, "ReadAll from a middle position", rest[i], own[5+i])
		}
	}
	page, err = s.ReadAll(c.ctx, mid, 2)
	if err != nil {
		t.Fatalf("ReadAll(%s, 2): %v", mid, err)
	}
	if len(page) != 2 {
		t.Fatalf("ReadAll(%s, 2): %d events, want 2", mid, len(page))
	}
	checkAfter(t, page, mid)
	if h.Features.FreshLog {
		sameRecorded(t, "ReadAll from a middle position", page[0], own[5])
		sameRecorded(t, "ReadAll from a middle position", page[1], own[6])
	}

	last := own[len(own)-1].Position
	page, err = s.ReadAll(c.ctx, last, 10)
	if err != nil {
		t.Fatalf("ReadAll(%s, 10): %v", last, err)
	}
	checkAfter(t, page, last)
	if h.Features.FreshLog && len(page) != 0 {
		t.Fatalf("ReadAll after the last event: %d events, want none", len(page))
	}
}

// checkAfter fails the test unless the positions of evs strictly increase
// from after.
func checkAfter(t *testing.T, evs []eventstore.RecordedEvent, after eventstore.Position) {
	t.Helper()
	pos := after
	for _, e := range evs {
		if !pos.Less(e.Position) {
			t.Fatalf("ReadAll after %s: event at %s follows %s", after, e.Position, pos)
		}
		pos = e.Position
	}
}

// testHead: Start on an empty log, then the position of the last append.
func testHead(t *testing.T, h Harness) {
	c := start(t, h)
	s := c.openStore()
	t.Run("Empty", func(t *testing.T) {
		if !h.Features.FreshLog {
			t.Skip("Features.FreshLog is false: the log may hold events")
		}
		head, err := s.Head(c.ctx)
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if !head.IsStart() {
			t.Fatalf("Head of an empty log: %s, want Start", head)
		}
	})
	stream := c.stream("head")
	before := c.from(s)
	prev := before
	for i, n := range []int{1, 3} {
		res := c.append(s, stream, eventstore.ExpectedRevision(i-1), c.newEvents(n)...)
		if !prev.Less(res.Position) {
			t.Fatalf("append at %s, not after %s", res.Position, prev)
		}
		head, err := s.Head(c.ctx)
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if head.Less(res.Position) || (h.Features.FreshLog && head != res.Position) {
			t.Fatalf("Head %s after an append at %s", head, res.Position)
		}
		prev = res.Position
	}
}
