package retm_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// newHandlerFixture is the generic webhook handler over a store double with
// one RETM source, mounted as in production.
func newHandlerFixture(t *testing.T) *webhooktest.Server {
	t.Helper()
	p := newProvider(t, retm.Config{
		Currency: "SAR",
		Tokens:   []retm.Token{{Value: testToken}, {Value: merchantToken, Merchant: merchant}},
	})
	return webhooktest.NewServer(t, nil, time.Time{}, p)
}

func TestHandler(t *testing.T) {
	f := newHandlerFixture(t)

	t.Run("path token", func(t *testing.T) {
		body := loadExample(t, "order.created")
		if got := webhooktest.Status(t, f.Post("/webhooks/retm/"+string(testToken), "", body)); got != "accepted" {
			t.Fatalf("order.created by path token: %s", got)
		}
		events := f.Store.Stream("order-retm.1532")
		if len(events) != 1 {
			t.Fatalf("order stream holds %d events", len(events))
		}
		m, err := eventcodec.Metadata(events[0].Event)
		if err != nil {
			t.Fatal(err)
		}
		if m.Scheme != tokenauth.SchemePath || m.KeyID != webhook.KeyID(testToken) || m.ProviderEventType != "order.created" ||
			m.DedupeKey != "order.created:1532:"+webhooktest.BodySHA256(body) || m.SlotKey != "order.created" {
			t.Fatalf("metadata %+v", m)
		}
		// Re-delivered: a duplicate.
		if got := webhooktest.Status(t, f.Post("/webhooks/retm", "Bearer "+string(testToken), body)); got != "duplicate" {
			t.Fatalf("re-delivery: %s", got)
		}
	})

	t.Run("check reward answered 400 after the append", func(t *testing.T) {
		body := loadExample(t, "check_reward")
		stream := "question-retm." + webhooktest.BodySHA256(body)
		for i, want := 0, 1; i < 2; i++ {
			w := f.Post("/webhooks/retm", "Bearer "+string(merchantToken), body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("attempt %d: status %d, body %s; want the Reply's 400", i, w.Code, w.Body)
			}
			checkReply(t, w.Code, w.Body.Bytes())
			if w.Header().Get(webhook.PositionHeader) == "" {
				t.Fatalf("attempt %d: no %s header: the reply was not sent after a durable append", i, webhook.PositionHeader)
			}
			// The question is recorded once, before the answer; the retry
			// is a duplicate and gets the same answer.
			events := f.Store.Stream(stream)
			if len(events) != want {
				t.Fatalf("attempt %d: %s holds %d events, want %d", i, stream, len(events), want)
			}
			if events[0].Type != aggregate.TypeEntityEventRecordedV2 {
				t.Fatalf("question recorded as %s", events[0].Type)
			}
		}
	})

	t.Run("401 stores nothing", func(t *testing.T) {
		const guessed = "retm-guessed-token-0000000000"
		forged := []byte(`{"business_refrence":"brand-someone-else","reward_code":"R9","branch_id":"b","date":"2025-12-17"}`)
		for _, tc := range []struct {
			name, target, authorization string
			body                        []byte
		}{
			{"wrong bearer", "/webhooks/retm", "Bearer " + guessed, loadExample(t, "redeem_reward")},
			{"wrong path token", "/webhooks/retm/" + guessed, "", loadExample(t, "redeem_reward")},
			{"no token", "/webhooks/retm", "", loadExample(t, "redeem_reward")},
			{"merchant mismatch", "/webhooks/retm", "Bearer " + string(merchantToken), forged},
			{"question with the wrong token", "/webhooks/retm", "Bearer " + guessed, loadExample(t, "promotional_coupon")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := f.Store.Count()
				w := f.Post(tc.target, tc.authorization, tc.body)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, body %s; want 401", w.Code, w.Body)
				}
				if f.Store.Count() != before {
					t.Fatal("a refused delivery was stored")
				}
			})
		}
		for _, tok := range []string{guessed, string(testToken), string(merchantToken)} {
			if strings.Contains(f.Logs.String(), tok) {
				t.Fatalf("the log holds a token:\n%s", f.Logs)
			}
		}
	})

	t.Run("menu event quarantined", func(t *testing.T) {
		body := []byte(`{"business_refrence":"` + merchant + `","event":"menu.updated","timestamp":"2025-12-17 19:26:35"}`)
		if got := webhooktest.Status(t, f.Post("/webhooks/retm", "Bearer "+string(merchantToken), body)); got != "quarantined" {
			t.Fatalf("menu.updated: %s", got)
		}
		if q := f.Store.Stream(aggregate.QuarantineStream("retm")); len(q) != 1 {
			t.Fatalf("quarantine holds %d events, want 1", len(q))
		}
	})
}
