// Package webhooktest holds what the providers' tests share: their example
// payloads, a delivery as Verify passes it, golden files of normalized
// facts, requests routed as in production, the generic handler over a store
// double, and the checks every fuzz target makes of a normalized delivery.
//
// Only _test.go files import it. It registers the -update flag (rewrite
// the golden files) in every test binary that does.
package webhooktest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/storedouble"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Example is one example payload: examples/{kind}/{Name}.json.
type Example struct {
	Name string // the file's base name without .json: usually the event type
	Body []byte
}

// Examples reads every *.json in dir, sorted by name. There must be want
// of them: a lost example fails the test, it does not shrink it.
func Examples(tb testing.TB, dir string, want int) []Example {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != want {
		tb.Fatalf("want the %d examples in %s, found %d", want, dir, len(paths))
	}
	sort.Strings(paths)
	out := make([]Example, 0, len(paths))
	for _, p := range paths {
		out = append(out, Example{Name: strings.TrimSuffix(filepath.Base(p), ".json"), Body: ReadExample(tb, dir, strings.TrimSuffix(filepath.Base(p), ".json"))})
	}
	return out
}

// ReadExample reads dir/{name}.json.
func ReadExample(tb testing.TB, dir, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BodySHA256 is the hex SHA-256 of body, as Delivery.BodySHA256 holds it.
func BodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Delivery is body as the handler passes it to Normalize: with its
// SHA-256, received at at, verified as v.
func Delivery(body []byte, at time.Time, v webhook.Verification) webhook.Delivery {
	return webhook.Delivery{Body: body, BodySHA256: BodySHA256(body), ReceivedAt: at, Verification: v}
}

// Replace returns body with old replaced by new, which must stand in it
// exactly once.
func Replace(tb testing.TB, body []byte, old, new string) []byte {
	tb.Helper()
	if bytes.Count(body, []byte(old)) != 1 {
		tb.Fatalf("%q is not in the body exactly once", old)
	}
	return bytes.Replace(body, []byte(old), []byte(new), 1)
}

// Prefixes parses IP prefixes, for an allow-list.
func Prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// TokenRequest builds a delivery of body to /webhooks/{source}, or with a
// path token to /webhooks/{source}/{pathToken}, from remote (when not
// empty), with an Authorization header for each value given, routed
// through a ServeMux on webhook.Pattern and webhook.TokenPattern so that
// PathValue is set as in production.
func TokenRequest(tb testing.TB, source, remote, pathToken string, body []byte, authorization ...string) *http.Request {
	tb.Helper()
	target := "/webhooks/" + source
	if pathToken != "" {
		target += "/" + pathToken
	}
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if remote != "" {
		r.RemoteAddr = remote
	}
	for _, a := range authorization {
		r.Header.Add("Authorization", a)
	}
	var routed *http.Request
	mux := http.NewServeMux()
	capture := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { routed = r })
	mux.Handle(webhook.Pattern, capture)
	mux.Handle(webhook.TokenPattern, capture)
	mux.ServeHTTP(httptest.NewRecorder(), r)
	if routed == nil {
		tb.Fatalf("request to %s not routed", target)
	}
	return routed
}

// CheckNew checks what a provider's New returned for a configuration that
// should (wantOK) or should not be accepted: an error exactly when it
// should not, one that reveals none of the secrets or tokens of at least
// minLen bytes, and otherwise a provider of source and kind.
func CheckNew(tb testing.TB, p webhook.Provider, err error, wantOK bool, source, kind string, minLen int, secrets ...[]byte) {
	tb.Helper()
	if (err == nil) != wantOK {
		tb.Fatalf("New: err = %v, want ok = %v", err, wantOK)
	}
	if err != nil {
		for _, s := range secrets {
			if len(s) >= minLen && strings.Contains(err.Error(), string(s)) {
				tb.Fatalf("error %q reveals a secret", err)
			}
		}
		return
	}
	if p.Source() != source || p.Kind() != kind {
		tb.Fatalf("Source, Kind = %q, %q; want %q, %q", p.Source(), p.Kind(), source, kind)
	}
}

// goldenView is what a golden file holds: the fact as the handler appends
// it (Data as the JSON it stores), the event type and delivery id as sent,
// and the reply, if the provider answers with one.
type goldenView struct {
	EventType  string          `json:"event_type"`
	DeliveryID string          `json:"delivery_id,omitempty"`
	Stream     string          `json:"stream"`
	Type       string          `json:"type"`
	DedupeKey  string          `json:"dedupe_key"`
	SlotKey    string          `json:"slot_key"`
	OnConflict int             `json:"on_conflict"`
	Data       json.RawMessage `json:"data"`
	Reply      *goldenReply    `json:"reply,omitempty"`
}

type goldenReply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// Golden compares n with testdata/golden/{name}.json, or, with -update,
// writes it there. JSON is written without HTML escaping.
func Golden(tb testing.TB, name string, n webhook.Normalized) {
	tb.Helper()
	data, err := encodeJSON(n.Fact.Data, "")
	if err != nil {
		tb.Fatalf("marshal fact data: %v", err)
	}
	v := goldenView{
		EventType:  n.EventType,
		DeliveryID: n.DeliveryID,
		Stream:     n.Fact.Stream,
		Type:       n.Fact.Type,
		DedupeKey:  n.Fact.DedupeKey,
		SlotKey:    n.Fact.SlotKey,
		OnConflict: int(n.Fact.OnConflict),
		Data:       data,
	}
	if n.Reply != nil {
		v.Reply = &goldenReply{Status: n.Reply.Status, Body: n.Reply.Body}
	}
	got, err := encodeJSON(v, "  ")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("normalized %s differs from %s (go test -update rewrites it):\n got: %s\nwant: %s", name, path, got, want)
	}
}

// encodeJSON is json.Marshal (or MarshalIndent) without HTML escaping,
// ending in a newline when indented.
func encodeJSON(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if indent == "" {
		return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
	}
	return b.Bytes(), nil
}

// Normalize is p.Normalize(d), failing the test on an error.
func Normalize(tb testing.TB, p webhook.Provider, d webhook.Delivery) webhook.Normalized {
	tb.Helper()
	n, err := p.Normalize(d)
	if err != nil {
		tb.Fatalf("Normalize: %v", err)
	}
	return n
}

// Refused reports whether Normalize refused a delivery (err != nil), and
// fails the test unless it refused it as a delivery to quarantine:
// aggregate.ErrUnknownEvent or ErrUnnormalizable.
func Refused(tb testing.TB, err error) bool {
	tb.Helper()
	if err != nil && !errors.Is(err, aggregate.ErrUnknownEvent) && !errors.Is(err, aggregate.ErrUnnormalizable) {
		tb.Fatalf("Normalize error %v is neither ErrUnknownEvent nor ErrUnnormalizable", err)
	}
	return err != nil
}

// CheckAccepted checks what Normalize made of a body it accepted: the body
// is JSON, and the fact's data, as the handler stores it, keeps the raw
// body. It returns that data's entity_id, if it has one.
func CheckAccepted(tb testing.TB, body []byte, f aggregate.Fact) (entityID string) {
	tb.Helper()
	if !json.Valid(body) {
		tb.Fatalf("Normalize accepted a body that is not JSON")
	}
	data, err := json.Marshal(f.Data)
	if err != nil {
		tb.Fatalf("marshal data: %v", err)
	}
	var back struct {
		EntityID string          `json:"entity_id"`
		Raw      json.RawMessage `json:"raw"`
	}
	if err := json.Unmarshal(data, &back); err != nil || len(back.Raw) == 0 {
		tb.Fatalf("data %s lost the raw body (%v)", data, err)
	}
	return back.EntityID
}

// LockedBuffer collects log output written from handler goroutines.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Server is the generic webhook handler over a store double, mounted on a
// ServeMux as in production.
type Server struct {
	Store   *storedouble.MemStoreDouble
	Mux     *http.ServeMux
	Logs    *LockedBuffer        // the handler's log, as JSON lines, from debug up
	Metrics *prometheus.Registry // the handler's metrics
	// Now is the handler's clock when NewServer was given one; a test may
	// move it between deliveries.
	Now time.Time
}

// NewServer serves providers over store (a new double when nil), with the
// clock at now (the real clock when now is zero).
func NewServer(tb testing.TB, store *storedouble.MemStoreDouble, now time.Time, providers ...webhook.Provider) *Server {
	tb.Helper()
	if store == nil {
		store = storedouble.NewMemStoreDouble()
	}
	s := &Server{Store: store, Mux: http.NewServeMux(), Logs: &LockedBuffer{}, Metrics: prometheus.NewRegistry(), Now: now}
	opts := webhook.Options{
		Logger:  slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: webhook.NewMetrics(s.Metrics),
	}
	if !now.IsZero() {
		opts.Clock = func() time.Time { return s.Now }
	}
	h, err := webhook.New(store, providers, opts)
	if err != nil {
		tb.Fatal(err)
	}
	h.Register(s.Mux)
	return s
}

// Serve serves r.
func (s *Server) Serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.Mux.ServeHTTP(w, r)
	return w
}

// Post serves a JSON POST of body to target, with an optional
// Authorization header.
func (s *Server) Post(target, authorization string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return s.Serve(r)
}

// Answer decodes the handler's JSON answer ({"status": …} or
// {"error": …}), failing the test unless its status code is code.
func Answer(tb testing.TB, w *httptest.ResponseRecorder, code int) map[string]string {
	tb.Helper()
	if w.Code != code {
		tb.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	var answer map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
		tb.Fatalf("answer %q: %v", w.Body, err)
	}
	return answer
}

// CheckUnauthenticated checks a failed Verify: the error wraps
// webhook.ErrUnauthenticated and repeats none of the texts given (the
// headers, tokens or secrets of the case; trimmed, those of 8 characters
// or more), and the Verification is zero.
func CheckUnauthenticated(tb testing.TB, v webhook.Verification, err error, sent ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("Verify succeeded (%+v), want failure", v)
	}
	if !errors.Is(err, webhook.ErrUnauthenticated) {
		tb.Fatalf("Verify error %v does not wrap webhook.ErrUnauthenticated", err)
	}
	for _, s := range sent {
		if s = strings.TrimSpace(s); len(s) >= 8 && strings.Contains(err.Error(), s) {
			tb.Fatalf("Verify error %q repeats a header, token or secret it was given", err)
		}
	}
	if v != (webhook.Verification{}) {
		tb.Fatalf("failed Verify returned %+v", v)
	}
}

// Normalized checks Normalize's result for a case that must be
// unnormalizable (ErrUnnormalizable) or must not fail at all, and reports
// whether there is a fact to check further.
func Normalized(tb testing.TB, n webhook.Normalized, err error, unnormalizable bool) bool {
	tb.Helper()
	if unnormalizable {
		if !errors.Is(err, aggregate.ErrUnnormalizable) {
			tb.Fatalf("Normalize = %+v, %v; want ErrUnnormalizable", n.Fact, err)
		}
		return false
	}
	if err != nil {
		tb.Fatal(err)
	}
	return true
}

// Status is the "status" of a 200 answer ("accepted", "duplicate", …),
// failing the test on any other code.
func Status(tb testing.TB, w *httptest.ResponseRecorder) string {
	tb.Helper()
	return Answer(tb, w, http.StatusOK)["status"]
}

// Counter reads receiptd_webhook_deliveries_total{source, outcome}.
func (s *Server) Counter(tb testing.TB, source, outcome string) float64 {
	tb.Helper()
	mfs, err := s.Metrics.Gather()
	if err != nil {
		tb.Fatal(err)
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
