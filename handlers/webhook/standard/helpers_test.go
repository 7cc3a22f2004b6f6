package standard_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

var (
	_ webhook.Provider = (*standard.Provider)(nil)

	// The keys, and the secrets as the spec serializes them.
	testKey     = []byte("standard-test-key-primary-0001!!")
	otherKey    = []byte("standard-test-key-rotated-0002!!")
	testSecret  = []byte(standard.SecretPrefix + base64.StdEncoding.EncodeToString(testKey))
	otherSecret = []byte(standard.SecretPrefix + base64.StdEncoding.EncodeToString(otherKey))

	// now is when the test deliveries arrive: a minute after order.created's
	// payload timestamp.
	now = time.Date(2025, 11, 21, 15, 5, 12, 0, time.UTC)
)

// The Standard Webhooks test vector, published with the spec's reference
// implementations.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

const (
	testSource = "storefront"
	orderID    = "ord_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	msgID      = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
)

// examplesDir holds the example deliveries, written for receiptd (no seed
// covers Standard Webhooks).
const examplesDir = "../../../examples/standard"

// loadExamples reads every example, sorted by name.
func loadExamples(tb testing.TB) []webhooktest.Example {
	return webhooktest.Examples(tb, examplesDir, 4)
}

// loadExample reads the example of one event type.
func loadExample(tb testing.TB, name string) []byte {
	return webhooktest.ReadExample(tb, examplesDir, name)
}

// newProvider returns a provider of source "storefront" for orders, with
// the given secrets.
func newProvider(tb testing.TB, secrets ...[]byte) *standard.Provider {
	tb.Helper()
	return newProviderWith(tb, standard.Config{Source: testSource, Category: "order", Secrets: secrets})
}

func newProviderWith(tb testing.TB, cfg standard.Config) *standard.Provider {
	tb.Helper()
	p, err := standard.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// headers are a delivery's Standard Webhooks headers; a nil slice leaves
// the header out.
type headers struct {
	id, timestamp, signature []string
}

// signed returns the headers of body sent as message id at ts, signed with
// secret.
func signed(secret []byte, id string, ts time.Time, body []byte) headers {
	return headers{
		id:        []string{id},
		timestamp: []string{strconv.FormatInt(ts.Unix(), 10)},
		signature: []string{standard.Sign(secret, id, ts, body)},
	}
}

func requestWith(body []byte, h headers) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/"+testSource, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for _, v := range h.id {
		r.Header.Add(standard.HeaderID, v)
	}
	for _, v := range h.timestamp {
		r.Header.Add(standard.HeaderTimestamp, v)
	}
	for _, v := range h.signature {
		r.Header.Add(standard.HeaderSignature, v)
	}
	return r
}
