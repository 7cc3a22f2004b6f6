package reusely_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

var (
	_ webhook.Provider = (*reusely.Provider)(nil)

	testSecret  = []byte("reusely-test-secret-primary")
	otherSecret = []byte("reusely-test-secret-rotated")
)

// examplesDir holds the example deliveries: the seed's offer.created, byte
// for byte, and an offer.status.updated built from it.
const examplesDir = "../../../examples/reusely"

// The signed pairs of the two examples.
const (
	createdObjectID = "93092"
	createdTS       = "1749441740"
	updatedObjectID = "93187"
	updatedTS       = "1749528140"
	exampleBoxID    = "STAG03U2O"
)

// loadExamples reads every example, sorted by name.
func loadExamples(tb testing.TB) []webhooktest.Example {
	return webhooktest.Examples(tb, examplesDir, 2)
}

// loadExample reads the example of one event type.
func loadExample(tb testing.TB, name string) []byte {
	return webhooktest.ReadExample(tb, examplesDir, name)
}

// unix parses a Unix-seconds string.
func unix(tb testing.TB, ts string) time.Time {
	tb.Helper()
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return time.Unix(n, 0).UTC()
}

// newProvider returns a provider of source "reusely" with the defaults and
// the given secrets.
func newProvider(tb testing.TB, secrets ...[]byte) *reusely.Provider {
	tb.Helper()
	return newProviderWith(tb, reusely.Config{Source: "reusely", Secrets: secrets})
}

func newProviderWith(tb testing.TB, cfg reusely.Config) *reusely.Provider {
	tb.Helper()
	p, err := reusely.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// requestWith builds a delivery carrying the given Authorization values.
func requestWith(body []byte, signatures ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/reusely", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for _, s := range signatures {
		r.Header.Add(reusely.SignatureHeader, s)
	}
	return r
}
