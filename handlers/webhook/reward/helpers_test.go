package reward_test

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
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

// loadExamples reads every example, sorted by name.
func loadExamples(tb testing.TB) []webhooktest.Example {
	return webhooktest.Examples(tb, examplesDir, 2)
}

// loadExample reads the example of one event type.
func loadExample(tb testing.TB, name string) []byte {
	return webhooktest.ReadExample(tb, examplesDir, name)
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
	return webhooktest.Delivery(body, receivedAt, webhook.Verification{Scheme: tokenauth.SchemePath, KeyID: webhook.KeyID(testToken)})
}

// request builds a delivery from remote with an optional path token and
// Authorization header, routed as in production.
func request(tb testing.TB, remote, pathToken, authorization string, body []byte) *http.Request {
	tb.Helper()
	if authorization == "" {
		return webhooktest.TokenRequest(tb, "reward", remote, pathToken, body)
	}
	return webhooktest.TokenRequest(tb, "reward", remote, pathToken, body, authorization)
}

// seedFile is a copy of the Reward seed document (shared/seeds/ beside the
// repository), kept in testdata so the check runs on any clone; sharedSeed is
// the original, compared with the copy where it is present.
const (
	seedFile   = "testdata/seed-001_1423b03535d78e27.txt"
	sharedSeed = "../../../../shared/seeds/001_1423b03535d78e27.txt"
)

// TestExampleIsFromSeed: the trigger_event.created example is the seed's
// example payload, byte for byte.
func TestExampleIsFromSeed(t *testing.T) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	if orig, err := os.ReadFile(sharedSeed); err == nil && !bytes.Equal(orig, seed) {
		t.Fatalf("%s differs from %s: copy the seed again", seedFile, sharedSeed)
	}
	ex := loadExample(t, reward.EventTriggerCreated)
	if !strings.Contains(string(seed), string(ex)) {
		t.Fatalf("%s/%s.json is not in %s byte for byte", examplesDir, reward.EventTriggerCreated, seedFile)
	}
}
