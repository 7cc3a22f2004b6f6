package main_test

import (
	"bufio"
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// The feed's end-to-end tests (issue 15's "Done means"): a receiptd
// binary on loopback ports, its feed derived by the read models from what
// the test ingests, read by subscribers over gRPC and SSE and pushed to a
// destination in the test.

// feedMsg is one message of the feed as a client sees it.
type feedMsg struct {
	pos, logPos uint64
	id, kind    string
}

// feedMarker sends the delivery that bounds a test's feed: the enrolment
// of a user no fixture has, whose user.enrolled.v1 is the feed's last
// event; it returns the marker's log position. A reader has the whole
// feed before the marker once it has a message at or past that position.
func feedMarker(t *testing.T, s *server) uint64 {
	t.Helper()
	b := mustJSON(map[string]any{"eventType": "user.enrolled", "data": map[string]any{
		"applicationDetails": app(), "userID": "u-feed-marker", "email": "marker@example.com", "availablePoints": 0, "lifetimePoints": 0,
		"numOfTransactions": 0, "totalCarbonScore": 0, "totalGreenProducts": 0, "createdAt": "2025-11-21T15:00:45.1070976"}})
	code, pos := s.post(t, "reewild", b, sign(b), "application/json")
	if code != http.StatusOK || pos == 0 {
		t.Fatalf("the marker delivery: %d at %d", code, pos)
	}
	return pos
}

// grpcFeedSession subscribes after `after` and hands each message to got
// until got returns false (the consumer dies), ctx ends or the stream
// fails.
func grpcFeedSession(ctx context.Context, c receiptdv1.FeedServiceClient, after uint64, got func(feedMsg) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Subscribe(ctx, &receiptdv1.SubscribeRequest{AfterPosition: after})
	if err != nil {
		return err
	}
	for {
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if !got(feedMsg{pos: m.GetPosition(), logPos: m.GetLogPosition(), id: m.GetId(), kind: m.GetKind()}) {
			return nil
		}
	}
}

// sseFeedSession reads GET /v1/feed, resuming with Last-Event-ID after
// `after` (as an EventSource reconnects), like grpcFeedSession.
func sseFeedSession(ctx context.Context, s *server, after uint64, got func(feedMsg) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/feed"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET /v1/feed: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	r := bufio.NewReader(resp.Body)
	var id, event, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		case line == "":
			var m struct {
				ID          string `json:"id"`
				Kind        string `json:"kind"`
				Position    string `json:"position"`
				LogPosition string `json:"logPosition"`
			}
			if err := json.Unmarshal([]byte(data), &m); err != nil || m.Position != id || m.Kind != event {
				return fmt.Errorf("SSE event id %q event %q data %s: %v", id, event, data, err)
			}
			pos, _ := strconv.ParseUint(m.Position, 10, 64)
			logPos, _ := strconv.ParseUint(m.LogPosition, 10, 64)
			if !got(feedMsg{pos: pos, logPos: logPos, id: m.ID, kind: m.Kind}) {
				return nil
			}
			id, event, data = "", "", ""
		}
	}
}

// feedConsumer is one subscriber of the feed: over gRPC or SSE, from the
// start or after a position, killed every few messages and resumed after
// the last position it saw (an event's or a checkpoint's) if resume.
type feedConsumer struct {
	name   string
	grpc   receiptdv1.FeedServiceClient // nil: SSE
	srv    *server
	resume bool
	rng    *rand.Rand

	mu       sync.Mutex
	events   []feedMsg
	last     uint64 // the last position seen
	lastLog  uint64 // the log position of the last message
	sessions int
	err      error // the first repeat, regression or unexpected error
}

func (c *feedConsumer) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// run consumes the feed until ctx ends.
func (c *feedConsumer) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.mu.Lock()
		after := c.last
		c.sessions++
		c.mu.Unlock()
		left := -1 // messages until the consumer dies; -1 never
		if c.resume {
			left = 1 + c.rng.IntN(12)
		}
		got := func(m feedMsg) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			if m.pos <= c.last {
				if c.err == nil {
					c.err = fmt.Errorf("%s, session %d: %s at %d after %d: a repeat or out of order", c.name, c.sessions, m.kind, m.pos, c.last)
				}
				return false
			}
			c.last, c.lastLog = m.pos, m.logPos
			if m.kind != "checkpoint" {
				c.events = append(c.events, m)
			}
			left--
			return left != 0
		}
		var err error
		if c.grpc != nil {
			err = grpcFeedSession(ctx, c.grpc, after, got)
		} else {
			err = sseFeedSession(ctx, c.srv, after, got)
		}
		if err != nil && ctx.Err() == nil {
			c.fail(fmt.Errorf("%s, session %d: %w", c.name, c.sessions, err))
			return
		}
	}
}

// reached reports whether the consumer has seen log position logPos.
func (c *feedConsumer) reached(logPos uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastLog >= logPos || c.err != nil
}

// readFeed reads the whole feed before log position end from s: the truth
// the tests compare with.
func readFeed(t *testing.T, s *server, end uint64) []feedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []feedMsg
	err := grpcFeedSession(ctx, receiptdv1.NewFeedServiceClient(dialGRPC(t, s)), 0, func(m feedMsg) bool {
		if m.logPos >= end {
			return false
		}
		if m.kind != "checkpoint" {
			out = append(out, m)
		}
		return true
	})
	if err != nil {
		t.Fatalf("reading the feed up to log position %d: %v (%d events read)", end, err, len(out))
	}
	if len(out) == 0 {
		t.Fatal("the feed is empty: are the read models deriving it?")
	}
	return out
}

// before is the part of a consumer's events before log position end.
func before(evs []feedMsg, end uint64) []feedMsg {
	i := slices.IndexFunc(evs, func(m feedMsg) bool { return m.logPos >= end })
	if i < 0 {
		return evs
	}
	return evs[:i]
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFeedSubscribersDuringIngest: 100 subscribers open while receiptd
// ingests (70 over gRPC on two connections, 30 over SSE; ten of them
// killed every few messages and resumed after the last position they
// saw, by after_position or Last-Event-ID) each get the whole feed, in
// position order, each event once, the same as a reader after the fact;
// and ingest answers every delivery meanwhile.
func TestFeedSubscribersDuringIngest(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	rng := rand.New(rand.NewPCG(15, 100))
	f := newFixture(rng, 20, 5)
	conns := []receiptdv1.FeedServiceClient{receiptdv1.NewFeedServiceClient(dialGRPC(t, s)), receiptdv1.NewFeedServiceClient(dialGRPC(t, s))}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumers []*feedConsumer
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range 100 {
		c := &feedConsumer{srv: s, resume: i%10 == 0, rng: rand.New(rand.NewPCG(15, uint64(i)))}
		if i < 70 {
			c.grpc = conns[i%2]
			c.name = fmt.Sprintf("gRPC subscriber %d", i)
		} else {
			c.name = fmt.Sprintf("SSE subscriber %d", i)
		}
		if c.resume {
			c.name += " (killed and resumed)"
		}
		consumers = append(consumers, c)
		wg.Go(func() { c.run(ctx) })
	}
	waitUntil(t, 30*time.Second, "100 subscriptions open", func() bool {
		return scrape(t, s, "receiptd_feed_subscribers")["receiptd_feed_subscribers"] >= 100
	})

	// Ingest meanwhile: every delivery must be answered 200 in time. Under
	// the race detector (every process several times slower, and 100
	// subscribers catching up on two cores), a 503 "not durable within
	// ingest.store_deadline" is retried as a provider retries it.
	client := &http.Client{Timeout: 10 * time.Second}
	var lat []time.Duration
	var busy atomic.Int64
	var latMu sync.Mutex
	work := make(chan []byte)
	var senders sync.WaitGroup
	for range 8 {
		senders.Go(func() {
			for b := range work {
				for {
					req, _ := http.NewRequest(http.MethodPost, s.url("/webhooks/reewild"), bytes.NewReader(b))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Reewild-Signature", sign(b))
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						t.Errorf("a delivery during the subscriptions: %v", err)
						break
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					latMu.Lock()
					lat = append(lat, time.Since(start))
					latMu.Unlock()
					if resp.StatusCode == http.StatusServiceUnavailable && raceEnabled {
						busy.Add(1)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if resp.StatusCode != http.StatusOK {
						t.Errorf("a delivery during the subscriptions answered %d", resp.StatusCode)
					}
					break
				}
			}
		})
	}
	for _, b := range f.deliveries {
		work <- b
	}
	close(work)
	senders.Wait()
	slices.Sort(lat)
	t.Logf("%d deliveries during 100 subscriptions: p50 %v, p99 %v, max %v; %d answered 503 and retried (race detector on: %v)",
		len(f.deliveries), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], busy.Load(), raceEnabled)

	end := feedMarker(t, s)
	waitUntil(t, 2*time.Minute, "every subscriber at the marker", func() bool {
		for _, c := range consumers {
			if !c.reached(end) {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	want := readFeed(t, s, end)
	resumed := 0
	for _, c := range consumers {
		if c.err != nil {
			t.Errorf("%v", c.err)
			continue
		}
		got := before(c.events, end)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d events, want the %d of the feed (first difference at %d)", c.name, len(got), len(want), firstDiff(got, want))
		}
		if c.resume {
			resumed += c.sessions
		}
	}
	if resumed < 10*len(want)/12 {
		t.Errorf("the killed subscribers had %d sessions in all: hardly killed", resumed)
	}
	t.Logf("%d feed events before the marker, each subscriber got them all; the ten killed ones resumed %d times in all", len(want), resumed-10)
}

func firstDiff(a, b []feedMsg) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// feedSecret is the destination's Standard Webhooks secret.
var feedSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("an end-to-end destination's key"))

// verifyStandardWebhook checks a request as the Standard Webhooks
// specification (v1) says a receiver does, with the standard library
// rather than receiptd's signer: the key is the base64 after "whsec_";
// the signed content is webhook-id "." webhook-timestamp "." body; the
// signature is the base64 of its HMAC-SHA256, one of the space-separated
// "v1,<sig>" entries of webhook-signature; the timestamp within 5 minutes.
func verifyStandardWebhook(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s off by %v", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, entry := range strings.Fields(h.Get("webhook-signature")) {
		if v, sig, _ := strings.Cut(entry, ","); v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no valid v1 signature")
}

// postQuietly sends a signed delivery; 0 if it got no answer.
func postQuietly(s *server, b []byte) (int, uint64) {
	req, err := http.NewRequest(http.MethodPost, s.url("/webhooks/reewild"), bytes.NewReader(b))
	if err != nil {
		return 0, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Reewild-Signature", sign(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pos, _ := strconv.ParseUint(resp.Header.Get("Receiptd-Position"), 10, 64)
	return resp.StatusCode, pos
}

// pushRequest is one request a destination received.
type pushRequest struct {
	n        int // its number, from 1
	epoch    int // the server process that sent it (0, 1, …)
	pos      uint64
	logPos   uint64
	id       string
	accepted bool // answered 2xx
}

// flakyDestination is a feed destination: it verifies every request's
// signature, fails 30% of them (500, 502, 503, 429), is down for a while
// (requests downFrom to downTo get no answer: connection dropped), and
// can hold one request (holdAt) without answering until released.
type flakyDestination struct {
	t   *testing.T
	srv *httptest.Server

	mu               sync.Mutex
	rng              *rand.Rand
	epoch            int
	requests         []*pushRequest
	downFrom, downTo int
	holdAt           int
	held             chan uint64   // told the held request's position
	release          chan struct{} // closed to answer it
}

func newFlakyDestination(t *testing.T) *flakyDestination {
	d := &flakyDestination{t: t, rng: rand.New(rand.NewPCG(15, 30)), held: make(chan uint64, 1), release: make(chan struct{})}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *flakyDestination) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := verifyStandardWebhook(feedSecret, r.Header, body); err != nil {
		d.t.Errorf("a push with a bad signature (%v): %s", err, body)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m struct {
		ID          string `json:"id"`
		Position    string `json:"position"`
		LogPosition string `json:"logPosition"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.ID != r.Header.Get("webhook-id") || r.Header.Get("Content-Type") != "application/json" {
		d.t.Errorf("a push %s (%v), webhook-id %s, Content-Type %s", body, err, r.Header.Get("webhook-id"), r.Header.Get("Content-Type"))
	}
	req := &pushRequest{id: m.ID}
	req.pos, _ = strconv.ParseUint(m.Position, 10, 64)
	req.logPos, _ = strconv.ParseUint(m.LogPosition, 10, 64)
	d.mu.Lock()
	req.n, req.epoch = len(d.requests)+1, d.epoch
	d.requests = append(d.requests, req)
	hold := req.n == d.holdAt
	down := req.n >= d.downFrom && req.n < d.downTo
	code := http.StatusNoContent
	if d.rng.IntN(10) < 3 {
		code = []int{500, 502, 503, 429}[d.rng.IntN(4)]
	}
	d.mu.Unlock()
	if hold {
		d.held <- req.pos
		<-d.release // the sender is killed meanwhile: this answer reaches no one
	}
	if down {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
			return
		}
	}
	if code == http.StatusNoContent {
		d.mu.Lock()
		req.accepted = true
		d.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (d *flakyDestination) snapshot() []pushRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]pushRequest, len(d.requests))
	for i, r := range d.requests {
		out[i] = *r
	}
	return out
}

// count is the number of requests of epoch e.
func (d *flakyDestination) count(e int) int {
	n := 0
	for _, r := range d.snapshot() {
		if r.epoch == e {
			n++
		}
	}
	return n
}

// acceptedUpTo reports whether an event at or past log position end was
// answered 2xx.
func (d *flakyDestination) acceptedUpTo(end uint64) bool {
	for _, r := range d.snapshot() {
		if r.accepted && r.logPos >= end {
			return true
		}
	}
	return false
}

func (d *flakyDestination) nextEpoch() {
	d.mu.Lock()
	d.epoch++
	d.mu.Unlock()
}

// TestFeedPushSurvivesKill9: a destination that fails 30% of requests
// and is down for a while receives every feed event at least once, in
// position order, each request with a valid Standard Webhooks signature
// (checked by the test's own verifier), although receiptd is killed with
// SIGKILL twice mid-delivery: once while a request is held unanswered,
// once at a random moment. After each restart it redelivers at most the
// request that was in flight (the held one exactly), nothing it had been
// answered 2xx for before.
func TestFeedPushSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	d := newFlakyDestination(t)
	d.downFrom, d.downTo, d.holdAt = 10, 25, 40
	cfg := reewildConfig() + fmt.Sprintf(`destinations:
  - name: ledger
    url: %s/hooks?token=do-not-log
    secret: %s
    timeout: 5s
    retry: {schedule: [2ms, 10ms, 30ms], jitter: 0, pause_after: 0}
`, d.srv.URL, feedSecret)
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	rng := rand.New(rand.NewPCG(15, 9))
	f := newFixture(rng, 40, 6)
	half := len(f.deliveries) / 2
	start := func() *server {
		s := startServer(t, dir, cfg, env)
		t.Cleanup(func() {
			if logs := s.logs.String(); strings.Contains(logs, feedSecret) || strings.Contains(logs, "do-not-log") {
				t.Error("the destination's secret or its URL's query appeared in the server's logs")
			}
		})
		return s
	}

	// 1. Killed while a request is held unanswered.
	s := start()
	sendAll(t, s, rng, f.deliveries[:half], 8)
	var held uint64
	select {
	case held = <-d.held:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the destination got %d requests, never the %dth", len(d.snapshot()), d.holdAt)
	}
	s.kill()
	d.nextEpoch()
	close(d.release)

	// 2. Restarted, more ingested, killed at a random moment.
	s = start()
	sending := make(chan struct{})
	go func() { // answers or not: the server is killed meanwhile
		defer close(sending)
		for _, b := range f.deliveries[half:] {
			if code, _ := postQuietly(s, b); code == 0 {
				return
			}
		}
	}()
	n := 10 + rng.IntN(30)
	waitUntil(t, 2*time.Minute, fmt.Sprintf("%d requests after the first restart", n), func() bool { return d.count(1) >= n })
	s.kill()
	d.nextEpoch()
	<-sending

	// 3. Restarted: everything ingested, then the marker.
	s = start()
	sendAll(t, s, rng, f.deliveries[half:], 8) // re-deliveries of what the kill cut short
	end := feedMarker(t, s)
	waitUntil(t, 3*time.Minute, "the destination at the marker", func() bool { return d.acceptedUpTo(end) })
	want := readFeed(t, s, end)

	reqs := d.snapshot()
	accepted := map[uint64]string{}
	failed := 0
	for i, r := range reqs {
		if i > 0 && r.pos < reqs[i-1].pos {
			t.Fatalf("request %d (process %d) at %d after %d: out of order", r.n, r.epoch, r.pos, reqs[i-1].pos)
		}
		if r.accepted {
			accepted[r.pos] = r.id
		} else {
			failed++
		}
	}
	for _, e := range want {
		if id, ok := accepted[e.pos]; !ok || id != e.id {
			t.Errorf("event %s at %d (%s): accepted %v with id %q", e.id, e.pos, e.kind, ok, id)
		}
	}
	// At each restart, what came again is at most the request in flight.
	for epoch := 1; epoch <= 2; epoch++ {
		var last uint64
		doneBefore := map[uint64]bool{}
		first := -1
		for i, r := range reqs {
			switch {
			case r.epoch < epoch:
				last = r.pos
				if r.accepted {
					doneBefore[r.pos] = true
				}
			case r.epoch == epoch && first < 0:
				first = i
			}
		}
		if first < 0 {
			t.Fatalf("process %d sent nothing", epoch)
		}
		var again []uint64
		for _, r := range reqs[first:] {
			if doneBefore[r.pos] && !slices.Contains(again, r.pos) {
				again = append(again, r.pos)
			}
		}
		if len(again) > 1 || (len(again) == 1 && again[0] != last) {
			t.Errorf("after kill %d, positions answered 2xx before were sent again: %v (in flight: %d)", epoch, again, last)
		}
		if epoch == 1 && (reqs[first].pos != held || last != held) {
			t.Errorf("after the kill during the held request at %d, the first request is at %d (the last before it at %d)", held, reqs[first].pos, last)
		}
		t.Logf("kill %d: in flight at %d; redelivered after the restart: %v", epoch, last, again)
	}
	if failed < len(reqs)/5 || len(reqs) < d.downTo {
		t.Errorf("%d of %d requests failed: the destination was hardly flaky or down", failed, len(reqs))
	}
	t.Logf("%d feed events before the marker, %d requests (%d failed) over three processes", len(want), len(reqs), failed)
}
