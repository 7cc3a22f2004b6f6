package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// TestReprocess: a delivery quarantined by one configuration is appended
// when re-processed by a handler whose decoder can now normalize it (the
// entity field fixed in the config), once; one the decoders still cannot
// normalize stays quarantined, with the reason; the log is only appended to.
func TestReprocess(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	whsec := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	handler := func(entityField string) *webhook.Handler {
		t.Helper()
		rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
		if err != nil {
			t.Fatal(err)
		}
		sf, err := standard.New(standard.Config{Source: "storefront", Secrets: [][]byte{whsec}, Category: "order", EntityField: entityField})
		if err != nil {
			t.Fatal(err)
		}
		h, err := webhook.New(store, []webhook.Provider{rw, sf}, webhook.Options{Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := handler("")
	mux := http.NewServeMux()
	before.Register(mux)
	post := func(r *http.Request) {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"quarantined"`)) {
			t.Fatalf("delivery: %d %s, want quarantined", w.Code, w.Body)
		}
	}
	order := []byte(`{"type":"order.paid","timestamp":"2025-11-21T15:04:19Z","data":{"order_id":"ord_1","status":"paid"}}`)
	r := httptest.NewRequest(http.MethodPost, "/webhooks/storefront", bytes.NewReader(order))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(standard.HeaderID, "msg_1")
	r.Header.Set(standard.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	r.Header.Set(standard.HeaderSignature, standard.Sign(whsec, "msg_1", now, order))
	post(r)
	post(request("reewild", []byte(`{"eventType":"receipt.teleported","data":{"receiptID":"r1"}}`), secret))

	after := handler("data.order_id")
	ctx := context.Background()
	q := store.Stream(aggregate.QuarantineStream("storefront"))
	if len(q) != 1 {
		t.Fatalf("storefront quarantine holds %d events", len(q))
	}
	got, err := after.Reprocess(ctx, q[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != "accepted" || got.Stream != "order-storefront.ord_1" || got.EventType != "order.paid" || got.Reason != "" {
		t.Fatalf("re-processed: %+v", got)
	}
	ev := store.Stream("order-storefront.ord_1")
	if len(ev) != 1 || ev[0].Position != got.Position {
		t.Fatalf("order stream: %+v", ev)
	}
	m := metadataOf(t, ev[0])
	if m.DeliveryID != "msg_1" || m.ReceivedAt != now.UTC() || m.Scheme == "" || m.BodySHA256 != sha(order) {
		t.Errorf("metadata of the re-processed event: %+v", m)
	}
	if again, err := after.Reprocess(ctx, q[0]); err != nil || again.Outcome != "duplicate" || again.Position != got.Position {
		t.Errorf("re-processed again: %+v, %v", again, err)
	}
	if still, err := before.Reprocess(ctx, q[0]); err != nil || still.Outcome != "quarantined" || still.Reason == "" {
		t.Errorf("re-processed by the old decoder: %+v, %v", still, err)
	}

	rq := store.Stream(aggregate.QuarantineStream("reewild"))
	still, err := after.Reprocess(ctx, rq[0])
	if err != nil || still.Outcome != "quarantined" || !bytes.Contains([]byte(still.Reason), []byte("unknown event type")) || still.Position != rq[0].Position {
		t.Errorf("unknown event type re-processed: %+v, %v", still, err)
	}
	if n := len(store.Stream(aggregate.QuarantineStream("storefront"))) + len(store.Stream(aggregate.QuarantineStream("reewild"))); n != 2 {
		t.Errorf("quarantine streams hold %d events after re-processing, want the 2 untouched", n)
	}
	if _, err := after.Reprocess(ctx, ev[0]); !errors.Is(err, webhook.ErrNotQuarantined) {
		t.Errorf("re-processing an entity event: %v", err)
	}
}
