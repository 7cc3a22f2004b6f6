package webhook_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

var (
	secret  = []byte("whsec-handler-test-0c1d2e3f")
	rotated = []byte("whsec-handler-test-rotated-9a8b")
	now     = time.Date(2025, 11, 21, 15, 6, 0, 123000000, time.UTC)
)

const examplesDir = "../../examples/reewild"

// lockedBuffer collects log output written from handler goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	t     *testing.T
	store *storedouble.MemStoreDouble
	mux   *http.ServeMux
	logs  *lockedBuffer
	reg   *prometheus.Registry
}

// newFixture serves a reewild source named "reewild" over a fresh
// memStoreDouble, with extra providers if given.
func newFixture(t *testing.T, opts webhook.Options, extra ...webhook.Provider) *fixture {
	t.Helper()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret, rotated}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: storedouble.NewMemStoreDouble(), mux: http.NewServeMux(), logs: &lockedBuffer{}, reg: prometheus.NewRegistry()}
	opts.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Metrics = webhook.NewMetrics(f.reg)
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return now }
	}
	h, err := webhook.New(f.store, append([]webhook.Provider{p}, extra...), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Register(f.mux)
	return f
}

// do serves r and returns the recorded answer.
func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

// request builds a delivery to source signed with key (unsigned if nil).
func request(source string, body []byte, key []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/"+source, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != nil {
		r.Header.Set(reewild.SignatureHeader, reewild.Sign(key, body))
	}
	return r
}

// post delivers body to the reewild source, signed with the primary secret.
func (f *fixture) post(body []byte) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(request("reewild", body, secret))
}

type answer struct {
	Status   string `json:"status"`
	Position string `json:"position"`
	Error    string `json:"error"`
}

// expect checks an answer's status code and, for a 200, its status and the
// Receiptd-Position header, and returns the decoded body.
func expect(t *testing.T, w *httptest.ResponseRecorder, code int, status string) answer {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var a answer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %q: %v", w.Body, err)
	}
	if code == http.StatusOK {
		if a.Status != status {
			t.Fatalf("answer status %q, want %q", a.Status, status)
		}
		if h := w.Header().Get(webhook.PositionHeader); h == "" || h != a.Position {
			t.Fatalf("%s header %q, body position %q", webhook.PositionHeader, h, a.Position)
		}
	} else {
		if a.Error == "" || a.Status != "" {
			t.Fatalf("error answer %q", w.Body)
		}
		if w.Header().Get(webhook.PositionHeader) != "" {
			t.Fatalf("a %d carries %s", code, webhook.PositionHeader)
		}
	}
	return a
}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(body []byte) string {
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}

func metadataOf(t *testing.T, e eventstore.RecordedEvent) aggregate.Metadata {
	t.Helper()
	m, err := eventcodec.Metadata(e.Event)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewRefusesBadConfig(t *testing.T) {
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	store := storedouble.NewMemStoreDouble()
	for _, tc := range []struct {
		name      string
		store     eventstore.Store
		providers []webhook.Provider
		opts      webhook.Options
	}{
		{"nil store", nil, []webhook.Provider{p}, webhook.Options{}},
		{"nil provider", store, []webhook.Provider{p, nil}, webhook.Options{}},
		{"source twice", store, []webhook.Provider{p, p}, webhook.Options{}},
		{"bad source name", store, []webhook.Provider{&providerDouble{source: "a.b"}}, webhook.Options{}},
		{"negative limit", store, []webhook.Provider{p}, webhook.Options{MaxBodyBytes: -1}},
		{"negative deadline", store, []webhook.Provider{p}, webhook.Options{StoreDeadline: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := webhook.New(tc.store, tc.providers, tc.opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestNoSourcesAnswers404(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	h, err := webhook.New(store, nil, webhook.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, request("reewild", readExample(t, "receipt.failed"), secret))
	expect(t, w, http.StatusNotFound, "")
	if store.Count() != 0 {
		t.Fatal("stored a delivery")
	}
}

func TestCheckSourceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"reewild": true, "reewild-uk": true, "Reap_2": true, "9": true,
		"": false, "-x": false, "_x": false, "a.b": false, "a/b": false, "a b": false, "ré": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if err := webhook.CheckSourceName(name); (err == nil) != ok {
			t.Errorf("CheckSourceName(%q) = %v, want ok = %v", name, err, ok)
		}
	}
}

func TestEventIDIsDeterministicUUIDv5(t *testing.T) {
	a := webhook.EventID("reewild", "receipt.scored:r1:abc", "abc")
	if a != webhook.EventID("reewild", "receipt.scored:r1:abc", "abc") {
		t.Fatal("EventID is not deterministic")
	}
	if len(a) != 36 || a[14] != '5' {
		t.Fatalf("EventID %q is not a UUIDv5", a)
	}
	// Ids already in the log were derived so: they never change.
	for _, c := range []struct{ source, key, sha, want string }{
		{"reewild", "receipt.scored:fb2cdc63-6d13-4176-89ae-7a424b69d7b5:0c1d", "0c1d", "cb69be6b-ca15-5e36-b3d9-db55dba43d71"},
		{"", "", "", "3391a9d5-3959-53e4-adbf-8437779ca308"},
	} {
		if got := webhook.EventID(c.source, c.key, c.sha); got != c.want {
			t.Errorf("EventID(%q, %q, %q) = %s, want %s", c.source, c.key, c.sha, got, c.want)
		}
	}
	ns := uuid.MustParse("17f9f96e-7593-488d-aee6-cdeca5bd484a")
	for i := range 200 {
		source, key, sha := fmt.Sprint("s", i%7), strings.Repeat(fmt.Sprint(i), i%50), fmt.Sprintf("%064x", i*i)
		if got, want := webhook.EventID(source, key, sha), uuid.NewSHA1(ns, []byte(source+"\x00"+key+"\x00"+sha)).String(); got != want {
			t.Fatalf("EventID(%q, %q, %q) = %s, uuid.NewSHA1 %s", source, key, sha, got, want)
		}
	}
	for _, b := range []string{
		webhook.EventID("reewild2", "receipt.scored:r1:abc", "abc"),
		webhook.EventID("reewild", "receipt.scored:r2:abc", "abc"),
		webhook.EventID("reewild", "receipt.scored:r1:abc", "abd"),
		webhook.EventID("reewil", "dreceipt.scored:r1:abc", "abc"), // the parts are delimited
	} {
		if a == b {
			t.Fatalf("EventID collides for different inputs: %s", a)
		}
	}
}

func TestUnknownSource(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "receipt.failed")
	expect(t, f.do(request("nope", body, secret)), http.StatusNotFound, "")
	if f.store.Count() != 0 {
		t.Fatal("stored a delivery to an unknown source")
	}
	if got := counter(t, f.reg, "", "unknown_source"); got != 1 {
		t.Fatalf("unknown_source counted %v", got)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead} {
		r := request("reewild", readExample(t, "receipt.failed"), secret)
		r.Method = m
		w := f.do(r)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
			t.Fatalf("%s: status %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	// An unknown source is 404 whatever the method.
	r := request("nope", nil, nil)
	r.Method = http.MethodGet
	expect(t, f.do(r), http.StatusNotFound, "")
	if f.store.Count() != 0 {
		t.Fatal("stored something")
	}
}

func TestContentType(t *testing.T) {
	for _, tc := range []struct {
		ct string
		ok bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON;charset=UTF-8", true},
		{" application/json ", true},
		{"application/vnd.reewild.event+json", true},
		{"application/cloudevents+json; charset=utf-8", true},
		{"", false},
		{"text/plain", false},
		{"text/json", false},
		{"application/x-www-form-urlencoded", false},
		{"application/json-seq", false},
		{"application/+json", false},
		{"application/a/b+json", false},
		{"multipart/form-data; boundary=x", false},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			f := newFixture(t, webhook.Options{})
			r := request("reewild", readExample(t, "receipt.failed"), secret)
			r.Header.Set("Content-Type", tc.ct)
			w := f.do(r)
			if tc.ok {
				expect(t, w, http.StatusOK, "accepted")
				return
			}
			expect(t, w, http.StatusUnsupportedMediaType, "")
			if f.store.Count() != 0 {
				t.Fatal("stored a delivery of the wrong content type")
			}
		})
	}
}

// jsonOfSize returns a signed-able JSON body of exactly n bytes.
func jsonOfSize(t *testing.T, n int) []byte {
	const head, tail = `{"eventType":"receipt.failed","data":{"receiptID":"r1","pad":"`, `"}}`
	if n < len(head)+len(tail) {
		t.Fatalf("size %d too small", n)
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestBodyLimit(t *testing.T) {
	const limit = 200
	f := newFixture(t, webhook.Options{MaxBodyBytes: limit})

	atLimit := jsonOfSize(t, limit)
	expect(t, f.post(atLimit), http.StatusOK, "accepted")

	over := jsonOfSize(t, limit+1)
	expect(t, f.post(over), http.StatusRequestEntityTooLarge, "")

	// Without a declared length (chunked), the limit is found while reading.
	r := request("reewild", over, secret)
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(over[:10]), bytes.NewReader(over[10:])))
	r.ContentLength = -1
	expect(t, f.do(r), http.StatusRequestEntityTooLarge, "")

	// A declared length over the limit is refused before reading.
	r = request("reewild", atLimit, secret)
	r.ContentLength = 10 << 20
	expect(t, f.do(r), http.StatusRequestEntityTooLarge, "")

	if n := f.store.Count(); n != 1 {
		t.Fatalf("%d events stored, want only the one at the limit", n)
	}
	if got := counter(t, f.reg, "reewild", "too_large"); got != 3 {
		t.Fatalf("too_large counted %v, want 3", got)
	}
}

func TestDefaultBodyLimitIsOneMiB(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	expect(t, f.post(jsonOfSize(t, 1<<20)), http.StatusOK, "accepted")
	expect(t, f.post(jsonOfSize(t, 1<<20+1)), http.StatusRequestEntityTooLarge, "")
}

func TestBadSignatureStoresNothing(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "rewards.awarded")
	for name, r := range map[string]*http.Request{
		"wrong secret": request("reewild", body, []byte("guessed")),
		"no signature": request("reewild", body, nil),
		"tampered body": func() *http.Request {
			r := request("reewild", body, secret)
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("74.28"), []byte("99.99"), 1)))
			return r
		}(),
		"not JSON": request("reewild", []byte("not json"), []byte("guessed")),
	} {
		t.Run(name, func(t *testing.T) {
			a := expect(t, f.do(r), http.StatusUnauthorized, "")
			if a.Error != "unauthenticated" {
				t.Fatalf("401 says %q; it must say nothing more", a.Error)
			}
		})
	}
	if f.store.Count() != 0 || f.store.AppendCalls() != 0 {
		t.Fatal("an unauthenticated delivery reached the store")
	}
	if got := counter(t, f.reg, "reewild", "bad_signature"); got != 4 {
		t.Fatalf("bad_signature counted %v", got)
	}
}

func TestNotJSONIsBadRequest(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	for _, body := range []string{"not json", "", `{"eventType":`, "{}{}"} {
		expect(t, f.post([]byte(body)), http.StatusBadRequest, "")
	}
	if f.store.Count() != 0 || f.store.AppendCalls() != 0 {
		t.Fatal("a body that is not JSON reached the store")
	}
	if got := counter(t, f.reg, "reewild", "malformed"); got != 4 {
		t.Fatalf("malformed counted %v", got)
	}
}

func TestAcceptsEveryExample(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	names := []string{"user.enrolled", "receipt.uploaded", "receipt.extracted", "receipt.enriched", "receipt.validated", "receipt.scored", "rewards.awarded", "receipt.failed"}
	wantStreams := map[string]string{
		"user.enrolled":     "user-reewild.00B4N5",
		"receipt.uploaded":  "receipt-reewild.133f1eb5-2c91-4a95-ad87-2ae6de6e8df0",
		"receipt.failed":    "receipt-reewild.491d44e2-a2b7-4107-87db-4d5b566e6d2b",
		"receipt.extracted": "receipt-reewild.fb2cdc63-6d13-4176-89ae-7a424b69d7b5",
	}
	for i, name := range names {
		body := readExample(t, name)
		a := expect(t, f.post(body), http.StatusOK, "accepted")
		if want := fmt.Sprint(i + 1); a.Position != want {
			t.Fatalf("%s: position %q, want %q", name, a.Position, want)
		}
		stream, ok := wantStreams[name]
		if !ok {
			stream = wantStreams["receipt.extracted"]
		}
		events := f.store.Stream(stream)
		e := events[len(events)-1]
		m := metadataOf(t, e)
		if e.Position.String() != a.Position {
			t.Fatalf("%s: stored at %s, answered %s", name, e.Position, a.Position)
		}
		wantMeta := aggregate.Metadata{
			Source:            "reewild",
			ProviderEventType: name,
			ReceivedAt:        now,
			Scheme:            reewild.Scheme,
			KeyID:             webhook.KeyID(secret),
			BodySHA256:        sha(body),
			DedupeKey:         m.DedupeKey,
			SlotKey:           m.SlotKey,
			CorrelationID:     e.ID,
			CausationID:       e.ID,
		}
		if !m.ReceivedAt.Equal(now) {
			t.Fatalf("%s: received_at %v, want %v", name, m.ReceivedAt, now)
		}
		m.ReceivedAt = now
		if m != wantMeta {
			t.Fatalf("%s: metadata\n got %+v\nwant %+v", name, m, wantMeta)
		}
		if !strings.HasSuffix(m.DedupeKey, ":"+sha(body)) || m.SlotKey == "" {
			t.Fatalf("%s: dedupe key %q, slot key %q", name, m.DedupeKey, m.SlotKey)
		}
		if want := webhook.EventID("reewild", m.DedupeKey, sha(body)); e.ID != want {
			t.Fatalf("%s: event id %s, want %s", name, e.ID, want)
		}
		// The v2 encoding: the normalized fact in Data, the body byte for
		// byte (so its signature can be checked again) in Body.
		wantType := aggregate.TypeReceiptStageRecordedV2
		source, bodySHA := "", ""
		if name == "user.enrolled" {
			wantType = aggregate.TypeUserEnrolledV2
			u, err := eventcodec.UserEnrolled(e.Event)
			if err != nil {
				t.Fatal(err)
			}
			source, bodySHA = u.Source, u.BodySHA256
		} else {
			r, err := eventcodec.StageRecorded(e.Event)
			if err != nil {
				t.Fatal(err)
			}
			source, bodySHA = r.Source, r.BodySHA256
		}
		raw, err := eventcodec.RawBody(e.Event)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != wantType || source != "reewild" || bodySHA != sha(body) || !bytes.Equal(raw, body) {
			t.Fatalf("%s: %s event does not keep source, hash and raw body", name, e.Type)
		}
	}
	if got := len(f.store.Stream(wantStreams["receipt.extracted"])); got != 5 {
		t.Fatalf("receipt stream has %d events, want 5 (extracted … awarded)", got)
	}
	if got := counter(t, f.reg, "reewild", "accepted"); got != 8 {
		t.Fatalf("accepted counted %v", got)
	}
}

func TestSecondSecretRecordsItsKeyID(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	expect(t, f.do(request("reewild", readExample(t, "receipt.failed"), rotated)), http.StatusOK, "accepted")
	e := f.store.Stream("receipt-reewild.491d44e2-a2b7-4107-87db-4d5b566e6d2b")[0]
	if m := metadataOf(t, e); m.KeyID != webhook.KeyID(rotated) {
		t.Fatalf("key id %q, want the rotated secret's %q", m.KeyID, webhook.KeyID(rotated))
	}
}

func TestDuplicateAppendsNothing(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "rewards.awarded")
	first := expect(t, f.post(body), http.StatusOK, "accepted")
	expect(t, f.post(readExample(t, "receipt.failed")), http.StatusOK, "accepted")
	appends := f.store.AppendCalls()

	again := expect(t, f.post(body), http.StatusOK, "duplicate")
	if again.Position != first.Position {
		t.Fatalf("duplicate answered position %s, want the original's %s", again.Position, first.Position)
	}
	if f.store.Count() != 2 || f.store.AppendCalls() != appends {
		t.Fatal("a duplicate was appended")
	}
	if got := counter(t, f.reg, "reewild", "duplicate"); got != 1 {
		t.Fatalf("duplicate counted %v", got)
	}
}

func TestConcurrentDuplicatesAppendOnce(t *testing.T) {
	f := newFixture(t, webhook.Options{MaxAttempts: 64})
	body := readExample(t, "receipt.scored")
	const n = 16
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := f.post(body)
			var a answer
			_ = json.Unmarshal(w.Body.Bytes(), &a)
			codes <- fmt.Sprint(w.Code, " ", a.Status)
		}()
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count["200 accepted"] != 1 || count["200 duplicate"] != n-1 {
		t.Fatalf("answers %v, want one accepted and %d duplicates", count, n-1)
	}
	if f.store.Count() != 1 {
		t.Fatalf("%d events stored, want 1", f.store.Count())
	}
}

func TestCorrectionIsAppendedAndFlagged(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "receipt.extracted")
	corrected := bytes.Replace(body, []byte(`"subTotal": 6.33`), []byte(`"subTotal": 6.34`), 1)
	if bytes.Equal(body, corrected) {
		t.Fatal("test body not changed")
	}
	expect(t, f.post(body), http.StatusOK, "accepted")
	expect(t, f.post(corrected), http.StatusOK, "accepted")
	events := f.store.Stream("receipt-reewild.fb2cdc63-6d13-4176-89ae-7a424b69d7b5")
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	if m := metadataOf(t, events[0]); m.Correction {
		t.Fatal("the first delivery is flagged as a correction")
	}
	m := metadataOf(t, events[1])
	if !m.Correction || m.SlotKey != "stage:EXTRACTED" {
		t.Fatalf("second delivery metadata %+v, want a correction of stage:EXTRACTED", m)
	}
	if !strings.Contains(f.logs.String(), `"correction":true`) {
		t.Fatal("the correction is not logged")
	}
}

func TestQuarantine(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	for _, tc := range []struct {
		name, body, eventType, reason string
	}{
		{"unknown event type", `{"eventType":"receipt.teleported","data":{"receiptID":"r1"}}`, "receipt.teleported", "unknown event type"},
		{"missing receipt id", `{"eventType":"receipt.scored","data":{"userID":"u1"}}`, "receipt.scored", "data.receiptID"},
		{"not an object", `[1,2,3]`, "", "cannot be normalized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.store.Stream("quarantine-reewild"))
			body := []byte(tc.body)
			first := expect(t, f.post(body), http.StatusOK, "quarantined")
			events := f.store.Stream("quarantine-reewild")
			if len(events) != before+1 {
				t.Fatalf("quarantine stream has %d events, want %d", len(events), before+1)
			}
			e := events[len(events)-1]
			if e.Type != aggregate.TypeDeliveryQuarantinedV2 || e.Position.String() != first.Position {
				t.Fatalf("quarantined as %s at %s, answered %s", e.Type, e.Position, first.Position)
			}
			q, err := eventcodec.Quarantined(e.Event)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := eventcodec.RawBody(e.Event)
			if err != nil {
				t.Fatal(err)
			}
			if q.Source != "reewild" || q.ProviderEventType != tc.eventType || q.BodySHA256 != sha(body) ||
				!bytes.Equal(raw, body) || !strings.Contains(q.Reason, tc.reason) {
				t.Fatalf("quarantined %+v", q)
			}
			m := metadataOf(t, e)
			if m.ProviderEventType != tc.eventType || m.BodySHA256 != sha(body) || m.KeyID != webhook.KeyID(secret) || e.ID != m.CorrelationID {
				t.Fatalf("metadata %+v", m)
			}

			// A retried bad delivery is quarantined once.
			again := expect(t, f.post(body), http.StatusOK, "quarantined")
			if again.Position != first.Position || len(f.store.Stream("quarantine-reewild")) != before+1 {
				t.Fatalf("re-delivery quarantined again (position %s, first %s)", again.Position, first.Position)
			}
		})
	}
	if got := counter(t, f.reg, "reewild", "quarantined"); got != 6 {
		t.Fatalf("quarantined counted %v, want 6", got)
	}
}

func TestConflictStoresNothing(t *testing.T) {
	strict := &providerDouble{source: "strict", onConflict: aggregate.Reject}
	f := newFixture(t, webhook.Options{}, strict)
	post := func(body string) *httptest.ResponseRecorder {
		return f.do(request("strict", []byte(body), nil))
	}
	expect(t, post(`{"id":"o1","v":1}`), http.StatusOK, "accepted")
	expect(t, post(`{"id":"o1","v":1}`), http.StatusOK, "duplicate")
	expect(t, post(`{"id":"o1","v":2}`), http.StatusConflict, "")
	if n := len(f.store.Stream("offer-strict.o1")); n != 1 {
		t.Fatalf("%d events, want only the first", n)
	}
	if got := counter(t, f.reg, "strict", "conflict"); got != 1 {
		t.Fatalf("conflict counted %v", got)
	}
}

func TestProviderFactOutsideItsSourceIsQuarantined(t *testing.T) {
	rogue := &providerDouble{source: "rogue", stream: "offer-other.o1"}
	f := newFixture(t, webhook.Options{}, rogue)
	expect(t, f.do(request("rogue", []byte(`{"id":"o1"}`), nil)), http.StatusOK, "quarantined")
	if len(f.store.Stream("offer-other.o1")) != 0 || len(f.store.Stream("quarantine-rogue")) != 1 {
		t.Fatal("a provider wrote outside its source")
	}
}

func TestStoreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *storedouble.MemStoreDouble)
	}{
		{"append unavailable", func(s *storedouble.MemStoreDouble) {
			s.OnAppend = func(context.Context, string, int) error {
				return fmt.Errorf("fsync: disk full: %w", eventstore.ErrUnavailable)
			}
		}},
		{"read unavailable", func(s *storedouble.MemStoreDouble) {
			s.OnRead = func(context.Context, string, int) error {
				return fmt.Errorf("dial: %w", eventstore.ErrUnavailable)
			}
		}},
		{"closed", func(s *storedouble.MemStoreDouble) { _ = s.Close() }},
		{"unknown store error", nil}, // set below: not retryable, not a 200 either
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, webhook.Options{RetryAfter: 7 * time.Second})
			want := http.StatusServiceUnavailable
			if tc.setup != nil {
				tc.setup(f.store)
			} else {
				f.store.OnAppend = func(context.Context, string, int) error { return errors.New("boom") }
				want = http.StatusInternalServerError
			}
			for _, name := range []string{"rewards.awarded", "unknown"} {
				body := []byte(`{"eventType":"unknown"}`) // quarantine needs the store too
				if name != "unknown" {
					body = readExample(t, name)
				}
				w := f.post(body)
				expect(t, w, want, "")
				if want == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != "7" {
					t.Fatalf("Retry-After %q, want 7", w.Header().Get("Retry-After"))
				}
			}
			if f.store.Count() != 0 {
				t.Fatal("stored despite the failure")
			}
		})
	}
}

func TestStoreDeadline(t *testing.T) {
	f := newFixture(t, webhook.Options{StoreDeadline: 50 * time.Millisecond})
	f.store.OnAppend = func(ctx context.Context, _ string, _ int) error {
		<-ctx.Done() // a store that cannot make the event durable in time
		return fmt.Errorf("commit: %w", ctx.Err())
	}
	start := time.Now()
	w := f.post(readExample(t, "receipt.uploaded"))
	expect(t, w, http.StatusServiceUnavailable, "")
	if w.Header().Get("Retry-After") != "5" {
		t.Fatalf("Retry-After %q, want the default 5", w.Header().Get("Retry-After"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("answered after %v, past the deadline", d)
	}
	if got := counter(t, f.reg, "reewild", "store_unavailable"); got != 1 {
		t.Fatalf("store_unavailable counted %v", got)
	}
}

func TestClientGoneDoesNotCancelAppend(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := request("reewild", readExample(t, "receipt.validated"), secret).WithContext(ctx)
	expect(t, f.do(r), http.StatusOK, "accepted")
	if f.store.Count() != 1 {
		t.Fatal("the append was cancelled with the request")
	}
}

func TestWrongRevisionIsRetried(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	const stream = "receipt-reewild.fb2cdc63-6d13-4176-89ae-7a424b69d7b5"
	competing := readExample(t, "receipt.extracted")
	f.store.OnAppend = func(_ context.Context, s string, call int) error {
		if call == 1 {
			// Another ingest node appends to the stream between our read
			// and our append.
			if _, err := f.store.AppendDirect(s, eventstore.NoStream, aggregate.Event{
				ID: "competitor", Type: aggregate.TypeReceiptStageRecorded, Data: []byte(`{}`),
				Metadata: []byte(`{"source":"reewild","dedupe_key":"receipt.extracted:x:` + sha(competing) + `","slot_key":"stage:EXTRACTED"}`),
			}); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	a := expect(t, f.post(readExample(t, "receipt.scored")), http.StatusOK, "accepted")
	events := f.store.Stream(stream)
	if len(events) != 2 || events[1].Position.String() != a.Position || f.store.AppendCalls() != 2 {
		t.Fatalf("%d events, %d appends; want the retry to append after the competitor", len(events), f.store.AppendCalls())
	}
	if metadataOf(t, events[1]).Correction {
		t.Fatal("a different stage was flagged as a correction")
	}
}

// otherNode is another Handler serving the reewild source on store: another
// ingest node on the same log, with its own decision cache.
func otherNode(t *testing.T, store eventstore.Store) http.Handler {
	t.Helper()
	rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(store, []webhook.Provider{rw}, webhook.Options{Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return mux
}

func TestWrongRevisionRetriedThenDuplicate(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	other := otherNode(t, f.store)
	body := readExample(t, "receipt.scored")
	// The competitor, another ingest node on the same log, delivers the
	// very same body first: the retry must see it and answer duplicate
	// with its position.
	f.store.OnAppend = func(ctx context.Context, s string, call int) error {
		if call == 1 {
			f.store.OnAppend = nil
			w := httptest.NewRecorder()
			other.ServeHTTP(w, request("reewild", body, secret))
			if w.Code != http.StatusOK {
				t.Errorf("competitor: %d", w.Code)
			}
		}
		return nil
	}
	a := expect(t, f.post(body), http.StatusOK, "duplicate")
	if a.Position != "1" || f.store.Count() != 1 {
		t.Fatalf("position %s, %d events", a.Position, f.store.Count())
	}
}

func TestContentionGivesUp(t *testing.T) {
	f := newFixture(t, webhook.Options{MaxAttempts: 3})
	n := 0
	f.store.OnAppend = func(_ context.Context, s string, _ int) error {
		n++
		_, err := f.store.AppendDirect(s, eventstore.Any, aggregate.Event{
			ID: fmt.Sprint("competitor-", n), Type: aggregate.TypeReceiptStageRecorded, Data: []byte(`{}`),
			Metadata: []byte(fmt.Sprintf(`{"source":"reewild","dedupe_key":"other-%d"}`, n)),
		})
		return err
	}
	w := f.post(readExample(t, "receipt.scored"))
	expect(t, w, http.StatusServiceUnavailable, "")
	if w.Header().Get("Retry-After") == "" || f.store.AppendCalls() != 3 {
		t.Fatalf("Retry-After %q after %d appends, want 3", w.Header().Get("Retry-After"), f.store.AppendCalls())
	}
}

func TestCorruptMetadataIsInternalError(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	if _, err := f.store.AppendDirect("receipt-reewild.fb2cdc63-6d13-4176-89ae-7a424b69d7b5", eventstore.NoStream,
		aggregate.Event{ID: "x", Type: "t", Data: []byte(`{}`), Metadata: []byte(`not json`)}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.post(readExample(t, "receipt.scored")), http.StatusInternalServerError, "")
	if f.store.Count() != 1 {
		t.Fatal("appended to a stream it could not decide on")
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "receipt.enriched")
	f.post(body)
	f.post(body)
	f.do(request("reewild", body, []byte("wrong")))
	f.post([]byte(`{"eventType":"x"}`))
	r := request("reewild", body, secret)
	r.Header.Set("Content-Type", "text/plain")
	f.do(r)
	f.post([]byte("nope"))

	want := map[string]float64{
		"accepted": 1, "duplicate": 1, "bad_signature": 1, "quarantined": 1,
		"unsupported_media_type": 1, "malformed": 1, "too_large": 0, "conflict": 0,
		"store_unavailable": 0, "method_not_allowed": 0, "internal_error": 0,
	}
	for outcome, n := range want {
		if got := counter(t, f.reg, "reewild", outcome); got != n {
			t.Errorf("deliveries_total{outcome=%q} = %v, want %v", outcome, got, n)
		}
	}
	if got := histogramCount(t, f.reg, "reewild"); got != 6 {
		t.Errorf("ingest_seconds count %d, want 6", got)
	}
}

// TestLogs: one line per refused or failed delivery with source, outcome
// and body hash; never a secret, a signature or an Authorization header.
func TestLogs(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "rewards.awarded")
	goodSig := reewild.Sign(secret, body)
	otherSig := reewild.Sign(secret, []byte(`{"other":true}`))
	const bearer = "Bearer tok-7f3a9c2e1b"

	r := request("reewild", body, nil)
	r.Header.Set(reewild.SignatureHeader, otherSig) // a real signature, of another body
	r.Header.Set("Authorization", bearer)
	expect(t, f.do(r), http.StatusUnauthorized, "")
	expect(t, f.do(request("reewild", body, rotated[:5])), http.StatusUnauthorized, "")
	expect(t, f.post([]byte(`{"eventType":"x"}`)), http.StatusOK, "quarantined")
	r = request("reewild", body, secret)
	r.Header.Set("Authorization", bearer)
	expect(t, f.do(r), http.StatusOK, "accepted")
	f.store.OnAppend = func(context.Context, string, int) error { return eventstore.ErrUnavailable }
	expect(t, f.post(readExample(t, "receipt.failed")), http.StatusServiceUnavailable, "")

	out := f.logs.String()
	for _, s := range []string{string(secret), string(rotated), string(rotated[:5]), hex.EncodeToString(secret), goodSig, otherSig, bearer, "tok-7f3a9c2e1b"} {
		if strings.Contains(out, s) {
			t.Fatalf("logs contain %q:\n%s", s, out)
		}
	}
	var outcomes []string
	for _, l := range f.logs.lines(t) {
		outcomes = append(outcomes, fmt.Sprint(l["outcome"]))
		if l["source"] != "reewild" || l["body_sha256"] == nil || l["body_sha256"] == "" {
			t.Fatalf("log line without source or body hash: %v", l)
		}
		if l["outcome"] != "accepted" && l["error"] == nil {
			t.Fatalf("refused delivery logged without its error: %v", l)
		}
	}
	sort.Strings(outcomes)
	if got := strings.Join(outcomes, ","); got != "accepted,bad_signature,bad_signature,quarantined,store_unavailable" {
		t.Fatalf("logged outcomes %s", got)
	}
}

// counter reads receiptd_webhook_deliveries_total{source,outcome}.
func counter(t *testing.T, reg *prometheus.Registry, source, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "receiptd_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == source && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// histogramCount reads the sample count of receiptd_webhook_ingest_seconds.
func histogramCount(t *testing.T, reg *prometheus.Registry, source string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "receiptd_webhook_ingest_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// providerDouble is a webhook.Provider for cases Reewild cannot produce: it
// accepts every delivery (scheme "none") and maps {"id":…} to a fact on
// offer-{source}.{id} (or on stream, if set), one slot per id.
type providerDouble struct {
	source     string
	stream     string
	onConflict aggregate.ConflictPolicy
}

func (p *providerDouble) Source() string { return p.source }
func (p *providerDouble) Kind() string   { return "double" }

func (p *providerDouble) Verify(*http.Request, []byte, time.Time) (webhook.Verification, error) {
	return webhook.Verification{Scheme: "none"}, nil
}

func (p *providerDouble) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	var body struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil || body.ID == "" {
		return webhook.Normalized{}, fmt.Errorf("double: %w", aggregate.ErrUnnormalizable)
	}
	stream := cmpOr(p.stream, aggregate.StreamID(aggregate.CategoryOffer, p.source, body.ID))
	return webhook.Normalized{
		EventType: "offer.updated",
		Fact: aggregate.Fact{
			Stream: stream,
			Type:   aggregate.TypeEntityEventRecorded,
			Data: aggregate.EntityEventRecorded{
				Source: p.source, Kind: aggregate.CategoryOffer, EntityID: body.ID, EventType: "offer.updated", BodySHA256: d.BodySHA256,
			},
			DedupeKey:  d.BodySHA256,
			SlotKey:    body.ID,
			OnConflict: p.onConflict,
		},
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestRawBodyKeptAsSent(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := []byte(`{"eventType":"receipt.uploaded","data":{"receiptID":"r<1>",  "merchantName":"M&S <Foods>","amount":6.10}}`)
	expect(t, f.post(body), http.StatusOK, "accepted")
	e := f.store.Stream("receipt-reewild.r<1>")
	if len(e) != 1 {
		t.Fatalf("%d events", len(e))
	}
	r, err := eventcodec.StageRecorded(e[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := eventcodec.RawBody(e[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	// Byte for byte, whitespace included: the stored body verifies again.
	if !bytes.Equal(raw, body) || r.Merchant != "M&S <Foods>" {
		t.Fatalf("stored raw body %q, merchant %q: not as sent", raw, r.Merchant)
	}
	if r.Amount == nil || r.Amount.String() != "6.1" {
		t.Fatalf("amount %v, want the exact decimal 6.10", r.Amount)
	}
}
