package retm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
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

// example is one example delivery.
type example struct {
	name string // the file's base name
	body []byte
}

// loadExamples reads every example delivery, sorted by name.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != 9 {
		tb.Fatalf("want the 9 RETM examples in %s, found %d", examplesDir, len(paths))
	}
	sort.Strings(paths)
	out := make([]example, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, example{name: strings.TrimSuffix(filepath.Base(p), ".json"), body: b})
	}
	return out
}

// loadExample reads one example delivery.
func loadExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
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
	sum := sha256.Sum256(body)
	return webhook.Delivery{
		Body:         body,
		BodySHA256:   hex.EncodeToString(sum[:]),
		ReceivedAt:   receivedAt,
		Verification: webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(token)},
	}
}

func delivery(body []byte) webhook.Delivery { return deliveryBy(testToken, body) }

func bodySHA(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// request builds a delivery from remote with an optional path token and
// Authorization header, routed through a ServeMux on webhook.Pattern and
// webhook.TokenPattern so that PathValue is set as in production.
func request(tb testing.TB, remote, pathToken, authorization string, body []byte) *http.Request {
	tb.Helper()
	target := "/webhooks/retm"
	if pathToken != "" {
		target += "/" + pathToken
	}
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	r.RemoteAddr = remote
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
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

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
