package reward_test

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
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// examplesDir holds the example deliveries, one file per event type.
const examplesDir = "../../../examples/reward"

var (
	_ webhook.Provider = (*reward.Provider)(nil)

	testToken  = []byte("rwd-test-token-primary-7f3a9c")
	otherToken = []byte("rwd-test-token-rotated-1b8e42")

	receivedAt = time.Date(2024, 12, 14, 15, 30, 0, 0, time.UTC)
)

// example is one example delivery.
type example struct {
	name string // the event type, the file's base name
	body []byte
}

// loadExamples reads every example delivery, sorted by name.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != 2 {
		tb.Fatalf("want the 2 Reward examples in %s, found %d", examplesDir, len(paths))
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

// loadExample reads the example delivery of one event type.
func loadExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func newProvider(tb testing.TB, cfg reward.Config) *reward.Provider {
	tb.Helper()
	if cfg.Source == "" {
		cfg.Source = "reward"
	}
	if cfg.Tokens == nil {
		cfg.Tokens = [][]byte{testToken}
	}
	p, err := reward.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func delivery(body []byte) webhook.Delivery {
	sum := sha256.Sum256(body)
	return webhook.Delivery{
		Body:         body,
		BodySHA256:   hex.EncodeToString(sum[:]),
		ReceivedAt:   receivedAt,
		Verification: webhook.Verification{Scheme: tokenauth.SchemePath, KeyID: webhook.KeyID(testToken)},
	}
}

// request builds a delivery from remote with an optional path token and
// Authorization header, routed through a ServeMux on webhook.Pattern and
// webhook.TokenPattern so that PathValue is set as in production.
func request(tb testing.TB, remote, pathToken, authorization string, body []byte) *http.Request {
	tb.Helper()
	target := "/webhooks/reward"
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

// seedFile is the Reward seed document, beside the repository in shared/.
const seedFile = "../../../../shared/seeds/001_1423b03535d78e27.txt"

// TestExampleIsFromSeed: the trigger_event.created example is the seed's
// example payload, byte for byte.
func TestExampleIsFromSeed(t *testing.T) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Skipf("seed not beside the repository: %v", err)
	}
	ex := loadExample(t, reward.EventTriggerCreated)
	if !strings.Contains(string(seed), string(ex)) {
		t.Fatalf("%s/%s.json is not in %s byte for byte", examplesDir, reward.EventTriggerCreated, seedFile)
	}
}
