package webhook_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// A Handler serves one Reewild source at POST /webhooks/reewild. The store
// here is the tests' in-memory double; cmd/receiptd passes the configured
// eventstore.Store.
func ExampleHandler_Register() {
	provider, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte("my-webhook-secret")}})
	if err != nil {
		panic(err)
	}
	h, err := webhook.New(storedouble.NewMemStoreDouble(), []webhook.Provider{provider}, webhook.Options{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: webhook.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)

	body, err := os.ReadFile("../../examples/reewild/receipt.failed.json")
	if err != nil {
		panic(err)
	}
	for range 2 {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(reewild.SignatureHeader, reewild.Sign([]byte("my-webhook-secret"), body))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Header().Get(webhook.PositionHeader), " ", w.Body)
	}
	// Output:
	// 200 1 {"status":"accepted","position":"1"}
	// 200 1 {"status":"duplicate","position":"1"}
}
