package retm_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// examplesDir holds the example deliveries, one file per webhook.
const examplesDir = "../../../examples/retm"

// merchant is the business reference of the examples.
const merchant = "brand-01hq7k2m4x"

var (
	_ webhook.Provider = (*retm.Provider)(nil)

	testToken     = []byte("retm-test-token-primary-5d2c8a")
	otherToken    = []byte("retm-test-token-rotated-9e4f1b")
	merchantToken = []byte("retm-test-token-merchant-3a7b6c")

	receivedAt = time.Date(2025, 12, 17, 19, 30, 0, 0, time.UTC)
)

// loadExamples reads every example, sorted by name.
func loadExamples(tb testing.TB) []webhooktest.Example {
	return webhooktest.Examples(tb, examplesDir, 9)
}

// loadExample reads the example of one event type.
func loadExample(tb testing.TB, name string) []byte {
	return webhooktest.ReadExample(tb, examplesDir, name)
}

func newProvider(tb testing.TB, cfg retm.Config) *retm.Provider {
	tb.Helper()
	if cfg.Source == "" {
		cfg.Source = "retm"
	}
	if cfg.Tokens == nil {
		cfg.Tokens = []retm.Token{{Value: testToken}}
	}
	p, err := retm.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// deliveryBy is a verified delivery of body, authenticated by token.
func deliveryBy(token, body []byte) webhook.Delivery {
	return webhooktest.Delivery(body, receivedAt, webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(token)})
}

func delivery(body []byte) webhook.Delivery { return deliveryBy(testToken, body) }

// request builds a delivery from remote with an optional path token and
// Authorization header, routed as in production.
func request(tb testing.TB, remote, pathToken, authorization string, body []byte) *http.Request {
	tb.Helper()
	if authorization == "" {
		return webhooktest.TokenRequest(tb, "retm", remote, pathToken, body)
	}
	return webhooktest.TokenRequest(tb, "retm", remote, pathToken, body, authorization)
}
