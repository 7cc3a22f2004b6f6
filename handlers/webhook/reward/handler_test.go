package reward_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/storedouble"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

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

// handlerFixture is the generic webhook handler over a store double with
// one Reward source, mounted as in production.
type handlerFixture struct {
	store *storedouble.MemStoreDouble
	mux   *http.ServeMux
	logs  *lockedBuffer
}

func newHandlerFixture(t *testing.T) *handlerFixture {
	t.Helper()
	store := storedouble.NewMemStoreDouble()
	logs := &lockedBuffer{}
	p := newProvider(t, reward.Config{Tokens: [][]byte{testToken, otherToken}})
	h, err := webhook.New(store, []webhook.Provider{p}, webhook.Options{
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return &handlerFixture{store: store, mux: mux, logs: logs}
}

func (f *handlerFixture) post(t *testing.T, target, authorization string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

// status decodes the {"status": …} of a 200.
func status(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", w.Code, w.Body)
	}
	var got struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	return got.Status
}

func TestHandler(t *testing.T) {
	const userStream = "user-reward.ca9bb5c2-25a6-43e9-972e-862d28241a47"
	f := newHandlerFixture(t)
	trigger := loadExample(t, reward.EventTriggerCreated)
	credit := loadExample(t, reward.EventCreditIssued)

	// The path-token route: Reward's usual set-up.
	if got := status(t, f.post(t, "/webhooks/reward/"+string(testToken), "", trigger)); got != "accepted" {
		t.Fatalf("trigger by path token: %s", got)
	}
	// Bearer on the plain route, with the rotated token.
	if got := status(t, f.post(t, "/webhooks/reward", "Bearer "+string(otherToken), credit)); got != "accepted" {
		t.Fatalf("credit by bearer: %s", got)
	}
	// The same credit again, and under another envelope id: both duplicates.
	if got := status(t, f.post(t, "/webhooks/reward/"+string(testToken), "", credit)); got != "duplicate" {
		t.Fatalf("credit re-delivered: %s", got)
	}
	again := bytes.Replace(credit, []byte("we_01jf31q8c2hv7rd5x0kzmt4e9b"), []byte("we_01jf31zzzzzzzzzzzzzzzzzzzz"), 1)
	if bytes.Equal(again, credit) {
		t.Fatal("envelope id not replaced")
	}
	if got := status(t, f.post(t, "/webhooks/reward/"+string(testToken), "", again)); got != "duplicate" {
		t.Fatalf("same transaction under another envelope id: %s", got)
	}

	events := f.store.Stream(userStream)
	if len(events) != 2 || f.store.Count() != 2 {
		t.Fatalf("stream %s holds %d events (log %d), want 2", userStream, len(events), f.store.Count())
	}
	for i, want := range []struct {
		typ, scheme, keyID, delivery, dedupe string
	}{
		{aggregate.TypeEntityEventRecordedV2, tokenauth.SchemePath, webhook.KeyID(testToken), "we_01jf2wkmvcfw6ts1qmgzya291c", "envelope:we_01jf2wkmvcfw6ts1qmgzya291c"},
		{aggregate.TypeUserPointsCreditedV2, tokenauth.SchemeBearer, webhook.KeyID(otherToken), "we_01jf31q8c2hv7rd5x0kzmt4e9b", "credit:tx_01jf31q8bz6w3n5p2g8rdy1k7s"},
	} {
		m, err := eventcodec.Metadata(events[i].Event)
		if err != nil {
			t.Fatal(err)
		}
		if events[i].Type != want.typ || m.Scheme != want.scheme || m.KeyID != want.keyID || m.DeliveryID != want.delivery || m.DedupeKey != want.dedupe || m.Source != "reward" {
			t.Fatalf("event %d: type %s, metadata %+v; want %+v", i, events[i].Type, m, want)
		}
	}

	// Unauthenticated: 401, nothing stored, no token in the log.
	const guessed = "rwd-guessed-token-000000000"
	for _, tc := range []struct{ name, target, authorization string }{
		{"wrong path token", "/webhooks/reward/" + guessed, ""},
		{"wrong bearer", "/webhooks/reward", "Bearer " + guessed},
		{"no token", "/webhooks/reward", ""},
		{"bearer and path differ", "/webhooks/reward/" + string(otherToken), "Bearer " + string(testToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.store.Count()
			body := bytes.Replace(credit, []byte("tx_01jf31q8bz6w3n5p2g8rdy1k7s"), []byte("tx_forged"), 1)
			w := f.post(t, tc.target, tc.authorization, body)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, body %s; want 401", w.Code, w.Body)
			}
			if f.store.Count() != before {
				t.Fatalf("a refused delivery was stored")
			}
			if strings.Contains(w.Body.String(), guessed) || strings.Contains(w.Body.String(), string(testToken)) {
				t.Fatalf("401 body %s repeats a token", w.Body)
			}
		})
	}
	for _, tok := range []string{guessed, string(testToken), string(otherToken)} {
		if strings.Contains(f.logs.String(), tok) {
			t.Fatalf("the log holds a token:\n%s", f.logs)
		}
	}

	// An unknown event type is quarantined, not dropped.
	unknown := []byte(`{"id":"we_x","type":"balance.debit_points_issued","data":{"user":{"id":"u1"}}}`)
	if got := status(t, f.post(t, "/webhooks/reward/"+string(testToken), "", unknown)); got != "quarantined" {
		t.Fatalf("unknown type: %s", got)
	}
	if q := f.store.Stream(aggregate.QuarantineStream("reward")); len(q) != 1 {
		t.Fatalf("quarantine holds %d events, want 1", len(q))
	}
}
