package reward_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// newHandlerFixture is the generic webhook handler over a store double with
// one Reward source, mounted as in production.
func newHandlerFixture(t *testing.T) *webhooktest.Server {
	t.Helper()
	p := newProvider(t, reward.Config{Tokens: [][]byte{testToken, otherToken}})
	return webhooktest.NewServer(t, nil, time.Time{}, p)
}

func TestHandler(t *testing.T) {
	const userStream = "user-reward.ca9bb5c2-25a6-43e9-972e-862d28241a47"
	f := newHandlerFixture(t)
	trigger := loadExample(t, reward.EventTriggerCreated)
	credit := loadExample(t, reward.EventCreditIssued)

	// The path-token route: Reward's usual set-up.
	if got := webhooktest.Status(t, f.Post("/webhooks/reward/"+string(testToken), "", trigger)); got != "accepted" {
		t.Fatalf("trigger by path token: %s", got)
	}
	// Bearer on the plain route, with the rotated token.
	if got := webhooktest.Status(t, f.Post("/webhooks/reward", "Bearer "+string(otherToken), credit)); got != "accepted" {
		t.Fatalf("credit by bearer: %s", got)
	}
	// The same credit again, and under another envelope id: both duplicates.
	if got := webhooktest.Status(t, f.Post("/webhooks/reward/"+string(testToken), "", credit)); got != "duplicate" {
		t.Fatalf("credit re-delivered: %s", got)
	}
	again := bytes.Replace(credit, []byte("we_01jf31q8c2hv7rd5x0kzmt4e9b"), []byte("we_01jf31zzzzzzzzzzzzzzzzzzzz"), 1)
	if bytes.Equal(again, credit) {
		t.Fatal("envelope id not replaced")
	}
	if got := webhooktest.Status(t, f.Post("/webhooks/reward/"+string(testToken), "", again)); got != "duplicate" {
		t.Fatalf("same transaction under another envelope id: %s", got)
	}

	events := f.Store.Stream(userStream)
	if len(events) != 2 || f.Store.Count() != 2 {
		t.Fatalf("stream %s holds %d events (log %d), want 2", userStream, len(events), f.Store.Count())
	}
	for i, want := range []struct {
		typ, scheme, keyID, delivery, dedupe string
	}{
		{aggregate.TypeEntityEventRecordedV2, tokenauth.SchemePath, webhook.KeyID(testToken), "we_01jf2wkmvcfw6ts1qmgzya291c", "envelope:we_01jf2wkmvcfw6ts1qmgzya291c"},
		{aggregate.TypeUserPointsCreditedV2, tokenauth.SchemeBearer, webhook.KeyID(otherToken), "we_01jf31q8c2hv7rd5x0kzmt4e9b", "credit:tx_01jf31q8bz6w3n5p2g8rdy1k7s"},
	} {
		m, err := eventcodec.Metadata(events[i].Event)
		if err != nil {
			t.Fatal(err)
		}
		if events[i].Type != want.typ || m.Scheme != want.scheme || m.KeyID != want.keyID || m.DeliveryID != want.delivery || m.DedupeKey != want.dedupe || m.Source != "reward" {
			t.Fatalf("event %d: type %s, metadata %+v; want %+v", i, events[i].Type, m, want)
		}
	}

	// Unauthenticated: 401, nothing stored, no token in the log.
	const guessed = "rwd-guessed-token-000000000"
	for _, tc := range []struct{ name, target, authorization string }{
		{"wrong path token", "/webhooks/reward/" + guessed, ""},
		{"wrong bearer", "/webhooks/reward", "Bearer " + guessed},
		{"no token", "/webhooks/reward", ""},
		{"bearer and path differ", "/webhooks/reward/" + string(otherToken), "Bearer " + string(testToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.Store.Count()
			body := bytes.Replace(credit, []byte("tx_01jf31q8bz6w3n5p2g8rdy1k7s"), []byte("tx_forged"), 1)
			w := f.Post(tc.target, tc.authorization, body)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, body %s; want 401", w.Code, w.Body)
			}
			if f.Store.Count() != before {
				t.Fatalf("a refused delivery was stored")
			}
			if strings.Contains(w.Body.String(), guessed) || strings.Contains(w.Body.String(), string(testToken)) {
				t.Fatalf("401 body %s repeats a token", w.Body)
			}
		})
	}
	for _, tok := range []string{guessed, string(testToken), string(otherToken)} {
		if strings.Contains(f.Logs.String(), tok) {
			t.Fatalf("the log holds a token:\n%s", f.Logs)
		}
	}

	// An unknown event type is quarantined, not dropped.
	unknown := []byte(`{"id":"we_x","type":"balance.debit_points_issued","data":{"user":{"id":"u1"}}}`)
	if got := webhooktest.Status(t, f.Post("/webhooks/reward/"+string(testToken), "", unknown)); got != "quarantined" {
		t.Fatalf("unknown type: %s", got)
	}
	if q := f.Store.Stream(aggregate.QuarantineStream("reward")); len(q) != 1 {
		t.Fatalf("quarantine holds %d events, want 1", len(q))
	}
}
