package retm_test

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
	"github.com/receiptd/receiptd/handlers/webhook/retm"
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
// one RETM source, mounted as in production.
type handlerFixture struct {
	store *storedouble.MemStoreDouble
	mux   *http.ServeMux
	logs  *lockedBuffer
}

func newHandlerFixture(t *testing.T) *handlerFixture {
	t.Helper()
	store := storedouble.NewMemStoreDouble()
	logs := &lockedBuffer{}
	p := newProvider(t, retm.Config{
		Currency: "SAR",
		Tokens:   []retm.Token{{Value: testToken}, {Value: merchantToken, Merchant: merchant}},
	})
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
	f := newHandlerFixture(t)

	t.Run("path token", func(t *testing.T) {
		body := loadExample(t, "order.created")
		if got := status(t, f.post(t, "/webhooks/retm/"+string(testToken), "", body)); got != "accepted" {
			t.Fatalf("order.created by path token: %s", got)
		}
		events := f.store.Stream("order-retm.1532")
		if len(events) != 1 {
			t.Fatalf("order stream holds %d events", len(events))
		}
		m, err := eventcodec.Metadata(events[0].Event)
		if err != nil {
			t.Fatal(err)
		}
		if m.Scheme != tokenauth.SchemePath || m.KeyID != webhook.KeyID(testToken) || m.ProviderEventType != "order.created" ||
			m.DedupeKey != "order.created:1532:"+bodySHA(body) || m.SlotKey != "order.created" {
			t.Fatalf("metadata %+v", m)
		}
		// Re-delivered: a duplicate.
		if got := status(t, f.post(t, "/webhooks/retm", "Bearer "+string(testToken), body)); got != "duplicate" {
			t.Fatalf("re-delivery: %s", got)
		}
	})

	t.Run("check reward answered 400 after the append", func(t *testing.T) {
		body := loadExample(t, "check_reward")
		stream := "question-retm." + bodySHA(body)
		for i, want := 0, 1; i < 2; i++ {
			w := f.post(t, "/webhooks/retm", "Bearer "+string(merchantToken), body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("attempt %d: status %d, body %s; want the Reply's 400", i, w.Code, w.Body)
			}
			checkReply(t, w.Code, w.Body.Bytes())
			if w.Header().Get(webhook.PositionHeader) == "" {
				t.Fatalf("attempt %d: no %s header: the reply was not sent after a durable append", i, webhook.PositionHeader)
			}
			// The question is recorded once, before the answer; the retry
			// is a duplicate and gets the same answer.
			events := f.store.Stream(stream)
			if len(events) != want {
				t.Fatalf("attempt %d: %s holds %d events, want %d", i, stream, len(events), want)
			}
			if events[0].Type != aggregate.TypeEntityEventRecordedV2 {
				t.Fatalf("question recorded as %s", events[0].Type)
			}
		}
	})

	t.Run("401 stores nothing", func(t *testing.T) {
		const guessed = "retm-guessed-token-0000000000"
		forged := []byte(`{"business_refrence":"brand-someone-else","reward_code":"R9","branch_id":"b","date":"2025-12-17"}`)
		for _, tc := range []struct {
			name, target, authorization string
			body                        []byte
		}{
			{"wrong bearer", "/webhooks/retm", "Bearer " + guessed, loadExample(t, "redeem_reward")},
			{"wrong path token", "/webhooks/retm/" + guessed, "", loadExample(t, "redeem_reward")},
			{"no token", "/webhooks/retm", "", loadExample(t, "redeem_reward")},
			{"merchant mismatch", "/webhooks/retm", "Bearer " + string(merchantToken), forged},
			{"question with the wrong token", "/webhooks/retm", "Bearer " + guessed, loadExample(t, "promotional_coupon")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := f.store.Count()
				w := f.post(t, tc.target, tc.authorization, tc.body)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, body %s; want 401", w.Code, w.Body)
				}
				if f.store.Count() != before {
					t.Fatal("a refused delivery was stored")
				}
			})
		}
		for _, tok := range []string{guessed, string(testToken), string(merchantToken)} {
			if strings.Contains(f.logs.String(), tok) {
				t.Fatalf("the log holds a token:\n%s", f.logs)
			}
		}
	})

	t.Run("menu event quarantined", func(t *testing.T) {
		body := []byte(`{"business_refrence":"` + merchant + `","event":"menu.updated","timestamp":"2025-12-17 19:26:35"}`)
		if got := status(t, f.post(t, "/webhooks/retm", "Bearer "+string(merchantToken), body)); got != "quarantined" {
			t.Fatalf("menu.updated: %s", got)
		}
		if q := f.store.Stream(aggregate.QuarantineStream("retm")); len(q) != 1 {
			t.Fatalf("quarantine holds %d events, want 1", len(q))
		}
	})
}
