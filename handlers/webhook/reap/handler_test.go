package reap_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

// TestThroughHandler drives Reap deliveries through the real generic handler
// (webhook.New) over an in-memory store double: accepted, duplicate by
// eventId (even re-serialized and signed over other bytes), and
// unauthenticated with nothing stored.
func TestThroughHandler(t *testing.T) {
	primary, second, stranger := testKeys(t)
	srv := webhooktest.NewServer(t, nil, time.Date(2025, 5, 31, 12, 5, 2, 0, time.UTC), newProvider(t, primary, second))
	store := srv.Store

	post := func(body []byte, signatures ...string) (int, map[string]string) {
		t.Helper()
		r := requestWith(body, signatures...)
		r.Header.Set("Content-Type", "application/json")
		w := srv.Serve(r)
		return w.Code, webhooktest.Answer(t, w, w.Code)
	}

	pretty := loadExample(t, "account_status_change.approved")
	const stream = "account-reap.5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e"

	t.Run("unauthenticated: 401, nothing stored", func(t *testing.T) {
		for name, sigs := range map[string][]string{
			"missing header": nil,
			"wrong key":      {signCompact(t, stranger, pretty)},
			"bad base64":     {"%%%"},
		} {
			code, answer := post(pretty, sigs...)
			if code != http.StatusUnauthorized || answer["error"] != "unauthenticated" {
				t.Fatalf("%s: %d %v, want 401 unauthenticated", name, code, answer)
			}
		}
		if store.AppendCalls() != 0 || store.Count() != 0 {
			t.Fatalf("an unauthenticated delivery reached the store: %d appends, %d events", store.AppendCalls(), store.Count())
		}
	})

	t.Run("accepted: signed over the compact form, sent pretty", func(t *testing.T) {
		code, answer := post(pretty, signCompact(t, primary, pretty))
		if code != http.StatusOK || answer["status"] != "accepted" {
			t.Fatalf("%d %v, want 200 accepted", code, answer)
		}
		events := store.Stream(stream)
		if len(events) != 1 || events[0].Type != aggregate.TypeEntityEventRecordedV2 {
			t.Fatalf("stream %s holds %d events", stream, len(events))
		}
		meta, err := eventcodec.Metadata(events[0].Event)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Source != "reap" || meta.Scheme != reap.SchemeCompactJSON || meta.KeyID != keyID(t, primary) ||
			meta.DedupeKey != "event:7f3c2a1e-4b5d-4c6e-9f80-1a2b3c4d5e6f" || meta.DeliveryID != "7f3c2a1e-4b5d-4c6e-9f80-1a2b3c4d5e6f" ||
			meta.ProviderEventType != "account_status_change" || !meta.ReceivedAt.Equal(srv.Now) {
			t.Fatalf("metadata = %+v", meta)
		}
		data, err := eventcodec.EntityEventRecorded(events[0].Event)
		if err != nil {
			t.Fatal(err)
		}
		if data.Status != "APPROVED" || data.StatusAt == nil || !data.StatusAt.Equal(time.Date(2025, 5, 31, 12, 5, 0, 0, time.UTC)) {
			t.Fatalf("data = %+v", data)
		}
	})

	t.Run("duplicate by eventId", func(t *testing.T) {
		// The same event re-sent, re-serialized (compact) and signed over
		// those bytes with the rotated key: other bytes, other key, same
		// eventId.
		compact, err := reap.CompactJSON(pretty)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []struct {
			body []byte
			sig  string
		}{
			{pretty, signCompact(t, primary, pretty)},
			{compact, sign(t, second, compact)},
		} {
			code, answer := post(d.body, d.sig)
			if code != http.StatusOK || answer["status"] != "duplicate" {
				t.Fatalf("%d %v, want 200 duplicate", code, answer)
			}
		}
		if n := len(store.Stream(stream)); n != 1 {
			t.Fatalf("stream holds %d events after duplicates, want 1", n)
		}
	})

	t.Run("another status of the account is appended", func(t *testing.T) {
		pending := loadExample(t, "account_status_change.pending")
		code, answer := post(pending, sign(t, second, pending))
		if code != http.StatusOK || answer["status"] != "accepted" {
			t.Fatalf("%d %v, want 200 accepted", code, answer)
		}
		events := store.Stream(stream)
		if len(events) != 2 {
			t.Fatalf("stream holds %d events, want 2", len(events))
		}
		meta, err := eventcodec.Metadata(events[1].Event)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Scheme != reap.SchemeRaw || meta.KeyID != keyID(t, second) {
			t.Fatalf("metadata = %+v", meta)
		}
	})

	t.Run("verified but unknown: quarantined", func(t *testing.T) {
		body := []byte(`{"eventType":"feature_access_change","data":{"entityId":"x"}}`)
		code, answer := post(body, sign(t, primary, body))
		if code != http.StatusOK || answer["status"] != "quarantined" {
			t.Fatalf("%d %v, want 200 quarantined", code, answer)
		}
		if n := len(store.Stream(aggregate.QuarantineStream("reap"))); n != 1 {
			t.Fatalf("quarantine holds %d events, want 1", n)
		}
	})

	t.Run("verified but not JSON: 400", func(t *testing.T) {
		before := store.Count()
		body := []byte(`{"eventType":`)
		if code, _ := post(body, sign(t, primary, body)); code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", code)
		}
		if store.Count() != before {
			t.Fatal("a body that is not JSON was stored")
		}
	})
}
