package webhook_test

import (
	"net/http"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// TestInsecure: an insecure source accepts an unsigned delivery, recorded
// as verified by no scheme; the provider's own Verify would refuse it.
func TestInsecure(t *testing.T) {
	p, err := reewild.New(reewild.Config{Source: "dev", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	body := readExample(t, "receipt.enriched")
	if _, err := p.Verify(request("dev", body, nil), body, now); err == nil {
		t.Fatal("the provider itself accepts an unsigned delivery")
	}
	f := newFixture(t, webhook.Options{}, webhook.Insecure(p))
	expect(t, f.do(request("dev", body, nil)), http.StatusOK, "accepted")
	evs := f.store.Stream("receipt-dev.fb2cdc63-6d13-4176-89ae-7a424b69d7b5")
	if len(evs) != 1 {
		t.Fatalf("events %v", evs)
	}
	if m := metadataOf(t, evs[0]); m.Scheme != webhook.SchemeInsecure || m.KeyID != "" {
		t.Errorf("metadata %+v", m)
	}
	if i := webhook.Insecure(p); i.Source() != "dev" || i.Kind() != "reewild" {
		t.Errorf("Source %q Kind %q", i.Source(), i.Kind())
	}
}
