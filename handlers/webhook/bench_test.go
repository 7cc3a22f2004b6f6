package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/storedouble"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// BenchmarkServeHTTP times one delivery through the handler over the
// in-memory store double: "accepted" appends a new receipt each time,
// "duplicate" re-delivers one already recorded.
func BenchmarkServeHTTP(b *testing.B) {
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		b.Fatal(err)
	}
	newHandler := func() http.Handler {
		h, err := webhook.New(storedouble.NewMemStoreDouble(), []webhook.Provider{p}, webhook.Options{
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: webhook.NewMetrics(nil),
		})
		if err != nil {
			b.Fatal(err)
		}
		mux := http.NewServeMux()
		h.Register(mux)
		return mux
	}
	body := readExample(b, "rewards.awarded")
	serve := func(h http.Handler, body []byte) int {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(reewild.SignatureHeader, reewild.Sign(secret, body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}

	b.Run("accepted", func(b *testing.B) {
		h := newHandler()
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			next := bytes.Replace(body, []byte("fb2cdc63-6d13-4176-89ae-7a424b69d7b5"), fmt.Appendf(nil, "%036d", i), 1)
			if code := serve(h, next); code != http.StatusOK {
				b.Fatal(code)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		h := newHandler()
		serve(h, body)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if code := serve(h, body); code != http.StatusOK {
				b.Fatal(code)
			}
		}
	})
}
