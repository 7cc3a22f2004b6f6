package feed_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/internal/feeddouble"
)

// testSecret is a Standard Webhooks secret: "whsec_" and the base64 of
// the key.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("a destination's 24-byte key"))

// verifyStandardWebhook checks a request as the Standard Webhooks
// specification (v1) says a receiver does, written here from the
// specification rather than through receiptd's signer: the key is the
// base64 after "whsec_"; the signed content is webhook-id "."
// webhook-timestamp "." body; the signature is the base64 of its
// HMAC-SHA256, one of the space-separated "v1,<sig>" entries of
// webhook-signature; the timestamp within 5 minutes of now.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s off by %v", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, entry := range strings.Fields(h.Get("webhook-signature")) {
		version, sig, _ := strings.Cut(entry, ",")
		if version == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no valid v1 signature")
}

// receiver is a destination's HTTP server: it verifies every request
// and records it; answer decides each answer.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	n        int               // requests so far
	received []uint64          // every request's position, in arrival order
	accepted map[string]uint64 // event id → position, answered 2xx
	bodies   map[string][]byte // event id → body
	answer   func(n int) int   // status for the n-th request (0: drop the connection)
	block    chan struct{}     // if set, requests wait on it
	inFlight chan uint64       // if set, told each request's position before it waits
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{t: t, accepted: map[string]uint64{}, bodies: map[string][]byte{}, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := verifyStandardWebhook(testSecret, req.Header, body, time.Now()); err != nil {
		r.t.Errorf("request %s: %v", req.Header.Get("webhook-id"), err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m struct {
		ID       string `json:"id"`
		Position string `json:"position"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.ID != req.Header.Get("webhook-id") {
		r.t.Errorf("body %s: %v (webhook-id %s)", body, err, req.Header.Get("webhook-id"))
	}
	pos, _ := strconv.ParseUint(m.Position, 10, 64)
	r.mu.Lock()
	r.n++
	n := r.n
	r.received = append(r.received, pos)
	block, inFlight := r.block, r.inFlight
	r.mu.Unlock()
	if inFlight != nil {
		inFlight <- pos
	}
	if block != nil {
		<-block
	}
	code := r.answer(n)
	if code == 0 { // down: no answer at all
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
	}
	if code >= 200 && code < 300 {
		r.mu.Lock()
		r.accepted[m.ID] = pos
		r.bodies[m.ID] = body
		r.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (r *receiver) snapshot() (received []uint64, accepted map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.received), maps(r.accepted)
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// render is the test's request body: the event's id and position.
func render(_ context.Context, e *feed.Event) ([]byte, error) {
	return json.Marshal(map[string]any{"id": e.ID, "kind": e.Kind, "position": strconv.FormatUint(e.Position, 10)})
}

func openProgress(t *testing.T, dir string) *feed.Progress {
	t.Helper()
	p, err := feed.OpenProgress(filepath.Join(dir, "destinations.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func startPusher(t *testing.T, src feed.Source, prog *feed.Progress, reg prometheus.Registerer, dests ...feed.Destination) (*feed.Pusher, context.CancelFunc, chan struct{}) {
	t.Helper()
	p, err := feed.NewPusher(dests, feed.PusherOptions{Source: src, Progress: prog, Render: render, Batch: 8, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, cancel, done
}

func fastRetry() feed.Retry {
	return feed.Retry{Initial: time.Millisecond, Max: 4 * time.Millisecond, Jitter: 0.5}
}

// waitFor polls cond until it holds (a deadline, not a sleep).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkDelivered: every event in want was accepted once at least, and the
// requests came in position order (a retry repeats the event it is on and
// never goes back).
func checkDelivered(t *testing.T, r *receiver, want []feed.Event) {
	t.Helper()
	received, accepted := r.snapshot()
	for i := 1; i < len(received); i++ {
		if received[i] < received[i-1] {
			t.Fatalf("request %d at position %d after %d: out of order", i, received[i], received[i-1])
		}
	}
	for _, e := range want {
		if p, ok := accepted[e.ID]; !ok || p != e.Position {
			t.Errorf("event %s at %d: accepted %v at %d", e.ID, e.Position, ok, p)
		}
	}
	if len(accepted) != len(want) {
		t.Errorf("accepted %d events, want %d", len(accepted), len(want))
	}
}

// TestPushFlakyDestination: a destination that fails 30% of requests and
// is down for a while (connections dropped, then 503s) receives every
// event at least once, in order, each request with a valid Standard
// Webhooks signature (checked by the test's own verifier).
func TestPushFlakyDestination(t *testing.T) {
	src := feeddouble.New()
	want := fill(src, 1, 40)
	rng := rand.New(rand.NewPCG(15, 30))
	var rngMu sync.Mutex
	r := newReceiver(t, func(n int) int {
		switch {
		case n >= 30 && n < 45:
			return 0 // down: no answer
		case n >= 45 && n < 60:
			return http.StatusServiceUnavailable
		}
		rngMu.Lock()
		defer rngMu.Unlock()
		if rng.IntN(10) < 3 {
			return []int{500, 502, 429}[rng.IntN(3)]
		}
		return http.StatusNoContent
	})
	prog := openProgress(t, t.TempDir())
	reg := prometheus.NewRegistry()
	p, _, _ := startPusher(t, src, prog, reg, feed.Destination{Name: "ledger", URL: r.srv.URL + "/hooks?token=x", Secret: []byte(testSecret), Retry: fastRetry()})
	want = append(want, fill(src, 41, 40)...) // live too
	waitFor(t, "every event accepted", func() bool { _, a := r.snapshot(); return len(a) >= len(want) })
	checkDelivered(t, r, want)
	waitFor(t, "the position at the head", func() bool {
		st, _ := p.Statuses(context.Background())
		return st[0].Delivered == src.FeedHead() && st[0].LagPositions == 0
	})
	st, _ := p.Statuses(context.Background())
	if st[0].Failures < 30 || st[0].Attempts != st[0].Failures+int64(len(want)) || st[0].URL != r.srv.URL+"/hooks" || st[0].Lag != 0 {
		t.Errorf("status %+v", st[0])
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, n := range []string{"receiptd_feed_destination_lag_positions", "receiptd_feed_destination_lag_seconds", "receiptd_feed_destination_attempts_total",
		"receiptd_feed_destination_failures_total", "receiptd_feed_destination_request_seconds", "receiptd_feed_destination_paused"} {
		if !slices.Contains(names, n) {
			t.Errorf("metric %s missing (have %v)", n, names)
		}
	}
}

// TestPushFilters: a destination gets only its kinds and sources, and its
// position moves over the rest.
func TestPushFilters(t *testing.T) {
	src := feeddouble.New()
	all := fill(src, 1, 20)
	var want []feed.Event
	for _, e := range all {
		if e.Kind == feed.KindReceiptCompleted {
			want = append(want, e)
		}
	}
	r := newReceiver(t, func(int) int { return http.StatusOK })
	prog := openProgress(t, t.TempDir())
	p, _, _ := startPusher(t, src, prog, nil, feed.Destination{Name: "completions", URL: r.srv.URL, Secret: []byte(testSecret),
		Kinds: []string{feed.KindReceiptCompleted}, Sources: []string{"reewild"}, Retry: fastRetry()})
	waitFor(t, "caught up", func() bool {
		st, _ := p.Statuses(context.Background())
		return st[0].Delivered == src.FeedHead()
	})
	checkDelivered(t, r, want)
	if s, _ := prog.Load("completions"); s.Position != src.FeedHead() {
		t.Errorf("saved position %d, want the head %d", s.Position, src.FeedHead())
	}
}

// TestPushPauseDeadLettersResumeRedeliver: failures in a row pause the
// destination with its event in the dead letters; resuming delivers it
// and the rest; redelivering from a position sends those again; giving up
// after max attempts skips an event.
func TestPushPauseDeadLettersResumeRedeliver(t *testing.T) {
	src := feeddouble.New()
	want := fill(src, 1, 8)
	var mu sync.Mutex
	failing := true
	r := newReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	prog := openProgress(t, t.TempDir())
	retry := fastRetry()
	retry.PauseAfter = 3
	p, _, _ := startPusher(t, src, prog, nil, feed.Destination{Name: "ledger", URL: r.srv.URL, Secret: []byte(testSecret), Retry: retry})
	ctx := context.Background()
	waitFor(t, "paused", func() bool { st, _ := p.Statuses(ctx); return st[0].Paused })
	st, _ := p.Statuses(ctx)
	if st[0].PausedReason != "3 failures in a row" || st[0].DeadLetters != 1 || st[0].LastError != "500 Internal Server Error" || st[0].Delivered != 0 {
		t.Errorf("paused: %+v", st[0])
	}
	dl, err := p.DeadLetters(ctx, "ledger")
	if err != nil || len(dl) != 1 || dl[0].EventID != want[0].ID || dl[0].Attempts != 3 || dl[0].Outcome != feed.DeadPaused {
		t.Fatalf("dead letters %+v, %v", dl, err)
	}
	if s, _ := prog.Load("ledger"); !s.Paused {
		t.Error("paused state not saved")
	}
	received, _ := r.snapshot()
	mu.Lock()
	failing = false
	mu.Unlock()
	if got, _ := r.snapshot(); len(got) != len(received) {
		t.Fatal("a paused destination was sent requests")
	}
	if _, err := p.Resume(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event accepted", func() bool { _, a := r.snapshot(); return len(a) == len(want) })
	checkDelivered(t, r, want)

	// Redeliver from the fourth event's position: those after it come again.
	before, _ := r.snapshot()
	if _, err := p.Redeliver(ctx, "ledger", want[3].Position); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivered", func() bool { got, _ := r.snapshot(); return len(got) == len(before)+len(want)-4 })
	got, _ := r.snapshot()
	for i, pos := range got[len(before):] {
		if pos != want[4+i].Position {
			t.Fatalf("redelivery %d at %d, want %d", i, pos, want[4+i].Position)
		}
	}
	if _, err := p.Pause(ctx, "nope"); !errors.Is(err, feed.ErrUnknownDestination) {
		t.Errorf("pause nope: %v", err)
	}

	// Max attempts: a destination that gives up after 2 goes on.
	r2 := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	retry = fastRetry()
	retry.MaxAttempts = 2
	p2, _, _ := startPusher(t, src, openProgress(t, t.TempDir()), nil, feed.Destination{Name: "best-effort", URL: r2.srv.URL, Secret: []byte(testSecret), Retry: retry})
	waitFor(t, "caught up", func() bool { st, _ := p2.Statuses(ctx); return st[0].Delivered == src.FeedHead() })
	checkDelivered(t, r2, want[1:])
	dl, _ = p2.DeadLetters(ctx, "best-effort")
	if len(dl) != 1 || dl[0].Outcome != feed.DeadSkipped || dl[0].LastError != "502 Bad Gateway" {
		t.Errorf("dead letters %+v", dl)
	}
}

// TestPushRestartRedeliversOnlyInFlight: a pusher stopped while a request
// is in flight and started again on the same progress file sends that
// event again and nothing else already answered 2xx.
func TestPushRestartRedeliversOnlyInFlight(t *testing.T) {
	src := feeddouble.New()
	want := fill(src, 1, 12)
	r := newReceiver(t, func(int) int { return http.StatusOK })
	dir := t.TempDir()
	prog := openProgress(t, dir)
	dest := feed.Destination{Name: "ledger", URL: r.srv.URL, Secret: []byte(testSecret), Retry: fastRetry()}

	// Hold the 6th request in flight, then stop.
	r.mu.Lock()
	r.inFlight = make(chan uint64, 100)
	r.mu.Unlock()
	block := make(chan struct{})
	_, cancel, done := startPusher(t, src, prog, nil, dest)
	var held uint64
	for i := 0; i < 6; i++ {
		held = <-r.inFlight
		if i == 4 {
			r.mu.Lock()
			r.block = block
			r.mu.Unlock()
		}
	}
	cancel()
	<-done
	close(block) // the receiver answers 2xx, to a pusher that is gone
	prog.Close()

	r.mu.Lock()
	r.block, r.inFlight = nil, nil
	before := len(r.received)
	r.mu.Unlock()
	prog = openProgress(t, dir)
	startPusher(t, src, prog, nil, dest)
	waitFor(t, "caught up", func() bool { got, _ := r.snapshot(); return len(got) == before+len(want)-5 })
	got, _ := r.snapshot()
	if got[before] != held {
		t.Fatalf("after the restart the first request is at %d, want the one in flight, %d", got[before], held)
	}
	for i, pos := range got[before:] {
		if pos != want[5+i].Position {
			t.Fatalf("after the restart request %d at %d, want %d", i, pos, want[5+i].Position)
		}
	}
}

func TestDestinationValidation(t *testing.T) {
	prog := openProgress(t, t.TempDir())
	for name, d := range map[string]feed.Destination{
		"no name":      {URL: "http://x", Secret: []byte(testSecret)},
		"bad url":      {Name: "a", URL: "ftp://x", Secret: []byte(testSecret)},
		"no secret":    {Name: "a", URL: "http://x"},
		"bad secret":   {Name: "a", URL: "http://x", Secret: []byte("whsec_!!!")},
		"unknown kind": {Name: "a", URL: "http://x", Secret: []byte(testSecret), Kinds: []string{"receipt.vanished.v1"}},
		"bad jitter":   {Name: "a", URL: "http://x", Secret: []byte(testSecret), Retry: feed.Retry{Jitter: 2}},
	} {
		if _, err := feed.NewPusher([]feed.Destination{d}, feed.PusherOptions{Source: feeddouble.New(), Progress: prog, Render: render}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	d := feed.Destination{Name: "a", URL: "http://x", Secret: []byte(testSecret)}
	if _, err := feed.NewPusher([]feed.Destination{d, d}, feed.PusherOptions{Source: feeddouble.New(), Progress: prog, Render: render}); err == nil {
		t.Error("a name twice: accepted")
	}
}
