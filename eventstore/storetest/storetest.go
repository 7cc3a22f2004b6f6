package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// OpenFunc opens the log a Harness prepared. ctx bounds the opening (a dial,
// a file lock), not the store's life.
type OpenFunc func(ctx context.Context) (eventstore.Store, error)

// Harness tells Run how to get a store and what it can do.
type Harness struct {
	// NewLog prepares a log for one case and returns the function that
	// opens it. Run calls it once per case. It may register cleanups with
	// t.Cleanup: they run after the suite has closed every store it opened.
	NewLog func(t *testing.T) OpenFunc

	// Features says what the store can do.
	Features Features

	// Timeout bounds each case: every append, read and wait in it. Zero
	// means 30 seconds.
	Timeout time.Duration
}

// Features are the optional capabilities of a store. A case that needs one
// the harness does not declare is skipped with the reason.
type Features struct {
	// FreshLog: the log NewLog prepares holds no events when first opened,
	// and nothing but the case writes to it. The suite then checks that Head
	// is Start and reads from Start. Without it (a shared server), it reads
	// from the head it recorded before appending and ignores other streams.
	FreshLog bool

	// Reopen: the OpenFunc may be called again after the store it returned
	// was closed, and the new store holds everything the old one
	// acknowledged, at the same revisions and positions. A file-backed
	// store reopens its file; a client of a server reconnects.
	Reopen bool

	// Subscribe: the store implements Subscribe (catch-up, then live). A
	// store without it (a test double for code that never subscribes) must
	// say so at once: its Subscribe returns an error matching
	// errors.ErrUnsupported, which SubscribeUnsupported checks, and every
	// case or part of a case that subscribes is skipped.
	Subscribe bool
}

const (
	defaultTimeout = 30 * time.Second
	// promptly bounds the wait for Subscribe to return after its context
	// ends or its store closes.
	promptly = 5 * time.Second
	// eventType is the type of every event the suite appends.
	eventType = "storetest.appended.v1"
)

// Run runs every case of the suite against the store h describes, each as a
// subtest of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewLog == nil {
		t.Fatal("storetest: Harness.NewLog is nil")
	}
	if h.Timeout <= 0 {
		h.Timeout = defaultTimeout
	}
	cases := []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"AppendExpectedRevision", testAppendExpectedRevision},
		{"AppendInvalid", testAppendInvalid},
		{"AppendMany", testAppendMany},
		{"ConcurrentSameStream", testConcurrentSameStream},
		{"ConcurrentStreams", testConcurrentStreams},
		{"ReadStream", testReadStream},
		{"RoundTrip", testRoundTrip},
		{"Body", testBody},
		{"ReadAll", testReadAll},
		{"Head", testHead},
		{"Durability", testDurability},
		{"SubscribeCatchUpThenLive", testSubscribeCatchUpThenLive},
		{"SubscribeFromMiddle", testSubscribeFromMiddle},
		{"SubscribeHandlerError", testSubscribeHandlerError},
		{"SubscribeCancel", testSubscribeCancel},
		{"SubscribeUnsupported", testSubscribeUnsupported},
		{"CancelledContext", testCancelledContext},
		{"Close", testClose},
		{"CloseInFlight", testCloseInFlight},
		{"CloseEndsSubscribe", testCloseEndsSubscribe},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

// tcase is one case: its log, its deadline and the random tag of its
// streams.
type tcase struct {
	t     *testing.T
	h     Harness
	ctx   context.Context
	open  OpenFunc
	tag   string
	event int // events made so far, for their data
}

func start(t *testing.T, h Harness) *tcase {
	t.Helper()
	open := h.NewLog(t)
	if open == nil {
		t.Fatal("storetest: Harness.NewLog returned a nil OpenFunc")
	}
	ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
	t.Cleanup(cancel)
	return &tcase{t: t, h: h, ctx: ctx, open: open, tag: randomHex(8)}
}

// in returns the case as seen from subtest t: same log, store, deadline
// and streams, with failures and cleanups reported on t.
func (c *tcase) in(t *testing.T) *tcase {
	sub := *c
	sub.t = t
	return &sub
}

// openStore opens the case's log; the store is closed when the case ends.
func (c *tcase) openStore() eventstore.Store {
	c.t.Helper()
	s, err := c.open(c.ctx)
	if err != nil {
		c.t.Fatalf("open store: %v", err)
	}
	if s == nil {
		c.t.Fatal("open store: OpenFunc returned a nil store and no error")
	}
	c.t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			c.t.Errorf("close store: %v", err)
		}
	})
	return s
}

// stream returns a stream name unique to the case: storetest-{name}.{tag}.
func (c *tcase) stream(name string) string {
	return "storetest-" + name + "." + c.tag
}

// own reports whether e is in one of the case's streams.
func (c *tcase) own(e eventstore.RecordedEvent) bool {
	return strings.HasPrefix(e.Stream, "storetest-") && strings.HasSuffix(e.Stream, "."+c.tag)
}

// newEvent returns an event with a random UUID and JSON data and metadata;
// every other one also has a Body of random bytes.
func (c *tcase) newEvent() aggregate.Event {
	c.event++
	id := newUUID()
	e := aggregate.Event{
		ID:       id,
		Type:     eventType,
		Data:     fmt.Appendf(nil, `{"case":%q,"n":%d,"id":%q}`, c.t.Name(), c.event, id),
		Metadata: fmt.Appendf(nil, `{"$correlationId":%q,"source":"storetest"}`, c.tag),
	}
	if c.event%2 == 0 {
		e.Body = make([]byte, 1+c.event%97)
		_, _ = rand.Read(e.Body) // never fails
	}
	return e
}

func (c *tcase) newEvents(n int) []aggregate.Event {
	out := make([]aggregate.Event, n)
	for i := range out {
		out[i] = c.newEvent()
	}
	return out
}

// from returns where the case reads the log from: Start on a fresh log,
// otherwise the head before the case appends anything.
func (c *tcase) from(s eventstore.Store) eventstore.Position {
	c.t.Helper()
	if c.h.Features.FreshLog {
		return eventstore.Start
	}
	h, err := s.Head(c.ctx)
	if err != nil {
		c.t.Fatalf("Head: %v", err)
	}
	return h
}

func (c *tcase) append(s eventstore.Store, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) eventstore.AppendResult {
	c.t.Helper()
	res, err := s.Append(c.ctx, stream, expected, events...)
	if err != nil {
		c.t.Fatalf("Append(%q, %s, %d events): %v", stream, expected, len(events), err)
	}
	return res
}

func (c *tcase) readStream(s eventstore.Store, stream string, from uint64, limit int) []eventstore.RecordedEvent {
	c.t.Helper()
	evs, err := s.ReadStream(c.ctx, stream, from, limit)
	if err != nil {
		c.t.Fatalf("ReadStream(%q, %d, %d): %v", stream, from, limit, err)
	}
	return evs
}

// readOwn reads the log from after to the head it has when the read starts,
// checks that positions strictly increase, and returns the case's events.
func (c *tcase) readOwn(s eventstore.Store, after eventstore.Position) []eventstore.RecordedEvent {
	c.t.Helper()
	head, err := s.Head(c.ctx)
	if err != nil {
		c.t.Fatalf("Head: %v", err)
	}
	var own []eventstore.RecordedEvent
	pos := after
	for pos.Less(head) {
		page, err := s.ReadAll(c.ctx, pos, 256)
		if err != nil {
			c.t.Fatalf("ReadAll(%s, 256): %v", pos, err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 256 {
			c.t.Fatalf("ReadAll(%s, 256) returned %d events", pos, len(page))
		}
		for _, e := range page {
			if !pos.Less(e.Position) {
				c.t.Fatalf("ReadAll: event at %s after %s: positions must strictly increase", e.Position, pos)
			}
			pos = e.Position
			if c.own(e) {
				own = append(own, e)
			}
		}
	}
	return own
}

// checkEvent fails the test unless got is want as appended to stream at rev.
func checkEvent(t *testing.T, got eventstore.RecordedEvent, stream string, rev uint64, want aggregate.Event) {
	t.Helper()
	if got.Stream != stream || got.Revision != rev {
		t.Fatalf("event %s: got %s@%d, want %s@%d", want.ID, got.Stream, got.Revision, stream, rev)
	}
	if got.ID != want.ID || got.Type != want.Type {
		t.Fatalf("%s@%d: got id %s type %q, want id %s type %q", stream, rev, got.ID, got.Type, want.ID, want.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%s@%d: data differs: got %d bytes %.80q, want %d bytes %.80q", stream, rev, len(got.Data), got.Data, len(want.Data), want.Data)
	}
	if !bytes.Equal(got.Metadata, want.Metadata) {
		t.Fatalf("%s@%d: metadata differs: got %q, want %q", stream, rev, got.Metadata, want.Metadata)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s@%d: body differs: got %d bytes %.80q, want %d bytes %.80q", stream, rev, len(got.Body), got.Body, len(want.Body), want.Body)
	}
	if got.RecordedAt.IsZero() {
		t.Fatalf("%s@%d: RecordedAt not set", stream, rev)
	}
	if d := time.Since(got.RecordedAt); d > time.Hour || d < -time.Hour {
		t.Fatalf("%s@%d: RecordedAt %s is %s away from now", stream, rev, got.RecordedAt, d)
	}
}

// sameRecorded fails the test unless a and b are the same recorded event.
func sameRecorded(t *testing.T, what string, got, want eventstore.RecordedEvent) {
	t.Helper()
	if got.Position != want.Position || got.Stream != want.Stream || got.Revision != want.Revision ||
		got.ID != want.ID || got.Type != want.Type || !got.RecordedAt.Equal(want.RecordedAt) ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Metadata, want.Metadata) || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s: got %s, want %s", what, describe(got), describe(want))
	}
}

func describe(e eventstore.RecordedEvent) string {
	return fmt.Sprintf("{%s@%d pos %s id %s type %q at %s, %d data bytes, %d metadata bytes, %d body bytes}",
		e.Stream, e.Revision, e.Position, e.ID, e.Type, e.RecordedAt.Format(time.RFC3339Nano), len(e.Data), len(e.Metadata), len(e.Body))
}

// checkWrongRevision fails the test unless err reports that stream was at
// actual when expected was asked for.
func checkWrongRevision(t *testing.T, err error, stream string, expected, actual eventstore.ExpectedRevision) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrWrongRevision) {
		t.Fatalf("Append(%q, %s): got %v, want an error matching ErrWrongRevision", stream, expected, err)
	}
	var wre *eventstore.WrongRevisionError
	if !errors.As(err, &wre) {
		t.Fatalf("Append(%q, %s): %v is not a *WrongRevisionError", stream, expected, err)
	}
	if wre.Stream != stream || wre.Expected != expected || wre.Actual != actual {
		t.Fatalf("Append(%q, %s): got %+v, want stream %q expected %s actual %s", stream, expected, *wre, stream, expected, actual)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// newUUID returns a random (version 4) UUID: KurrentDB requires event ids
// to be UUIDs.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
