package reusely_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
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

// example is one example delivery.
type example struct {
	name string // the event type, the file's base name
	body []byte
}

// loadExamples reads every example payload, sorted by name.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != 2 {
		tb.Fatalf("want the 2 examples in %s, found %d", examplesDir, len(paths))
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

// loadExample reads the example payload of one event type.
func loadExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
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

// replace returns body with old replaced by new exactly once.
func replace(tb testing.TB, body []byte, old, new string) []byte {
	tb.Helper()
	if bytes.Count(body, []byte(old)) != 1 {
		tb.Fatalf("%q is not in the body exactly once", old)
	}
	return bytes.Replace(body, []byte(old), []byte(new), 1)
}
