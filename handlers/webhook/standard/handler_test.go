package standard_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// fixture serves one Standard Webhooks source, "storefront" (orders),
// through the real webhook.Handler over a storedouble.MemStoreDouble.
type fixture struct {
	*webhooktest.Server
	t *testing.T
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{Server: webhooktest.NewServer(t, nil, now, newProvider(t, testSecret, otherSecret)), t: t}
}

// post delivers body with h and checks the status code; it returns the
// answer's "status" (or "error").
func (f *fixture) post(body []byte, h headers, code int) string {
	f.t.Helper()
	answer := webhooktest.Answer(f.t, f.Serve(requestWith(body, h)), code)
	return answer["status"] + answer["error"]
}

// counter reads receiptd_webhook_deliveries_total{source=testSource,outcome}.
func (f *fixture) counter(outcome string) float64 {
	f.t.Helper()
	return f.Counter(f.t, testSource, outcome)
}

func (f *fixture) metadata(stream string) []aggregate.Metadata {
	f.t.Helper()
	var out []aggregate.Metadata
	for _, e := range f.Store.Stream(stream) {
		m, err := eventcodec.Metadata(e.Event)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

const orderStream = "order-" + testSource + "." + orderID

// TestHandlerDeliveries runs the examples through the generic handler: each
// accepted once with its webhook-id recorded, a retry (same id and body,
// fresh timestamp and signature) a duplicate, another body under a
// recorded id a correction, and every delivery that fails verification 401
// with nothing stored.
func TestHandlerDeliveries(t *testing.T) {
	f := newFixture(t)
	created := loadExample(t, "order.created")
	if got := f.post(created, signed(testSecret, msgID, f.Now, created), http.StatusOK); got != "accepted" {
		t.Fatalf("first delivery: %s", got)
	}
	m := f.metadata(orderStream)
	if len(m) != 1 || m[0].DeliveryID != msgID || m[0].Scheme != standard.Scheme || m[0].KeyID != webhook.KeyID(testKey) ||
		m[0].ProviderEventType != "order.created" || m[0].SlotKey != "webhook-id:"+msgID || m[0].DedupeKey != "webhook-id:"+msgID+":"+m[0].BodySHA256 {
		t.Fatalf("metadata %+v", m)
	}

	// The sender's retry a minute later: new timestamp, new signature, same
	// id and body.
	f.Now = f.Now.Add(time.Minute)
	if got := f.post(created, signed(otherSecret, msgID, f.Now, created), http.StatusOK); got != "duplicate" {
		t.Fatalf("retry: %s", got)
	}

	// The other examples, each its own message.
	for i, name := range []string{"order.paid", "order.note_added", "order.refunded"} {
		body := loadExample(t, name)
		if got := f.post(body, signed(testSecret, msgID+"_"+strings.ReplaceAll(name, ".", "_"), f.Now, body), http.StatusOK); got != "accepted" {
			t.Fatalf("%s: %s", name, got)
		}
		if n := len(f.Store.Stream(orderStream)); n != i+2 {
			t.Fatalf("%d events after %s", n, name)
		}
	}

	// Another body under a recorded id: appended, flagged as a correction.
	changed := bytes.Replace(created, []byte(`"pending"`), []byte(`"on_hold"`), 1)
	if got := f.post(changed, signed(testSecret, msgID, f.Now, changed), http.StatusOK); got != "accepted" {
		t.Fatalf("changed body: %s", got)
	}
	m = f.metadata(orderStream)
	if last := m[len(m)-1]; !last.Correction || last.DeliveryID != msgID {
		t.Fatalf("changed body recorded as %+v, want a correction", last)
	}
	stored := f.Store.Count()
	appends := f.Store.AppendCalls()

	// Refused: nothing read, nothing stored.
	good := signed(testSecret, "msg_refused", f.Now, created)
	for name, tc := range map[string]struct {
		body []byte
		h    headers
	}{
		"unsigned":      {created, headers{id: good.id, timestamp: good.timestamp}},
		"no headers":    {created, headers{}},
		"tampered body": {changed, good},
		"wrong secret":  {created, signed([]byte("whsec_Z3Vlc3NlZA=="), "msg_refused", f.Now, created)},
		"expired":       {created, signed(testSecret, "msg_refused", f.Now.Add(-standard.DefaultTolerance-time.Second), created)},
		"only v1a":      {created, headers{id: good.id, timestamp: good.timestamp, signature: []string{"v1a," + good.signature[0][3:]}}},
	} {
		if got := f.post(tc.body, tc.h, http.StatusUnauthorized); got != "unauthenticated" {
			t.Fatalf("%s: %s", name, got)
		}
	}
	if got := f.counter("bad_signature"); got != 6 {
		t.Fatalf("bad_signature counted %v times, want 6", got)
	}
	if f.Store.Count() != stored || f.Store.AppendCalls() != appends {
		t.Fatalf("a refused delivery reached the store")
	}

	// Verified but without an entity id: quarantined, not dropped; verified
	// but not JSON at all: 400, nothing stored.
	thin := []byte(`{"type":"order.archived","data":{}}`)
	if got := f.post(thin, signed(testSecret, "msg_thin", f.Now, thin), http.StatusOK); got != "quarantined" {
		t.Fatalf("no entity id: %s", got)
	}
	junk := []byte(`order=1`)
	f.post(junk, signed(testSecret, "msg_junk", f.Now, junk), http.StatusBadRequest)
	if n := len(f.Store.Stream(aggregate.QuarantineStream(testSource))); n != 1 || f.Store.Count() != stored+1 {
		t.Fatalf("%d quarantined, %d events in all", n, f.Store.Count())
	}
}

// TestHandlerSpecTestVector: the spec's own delivery, received at its
// timestamp, is verified by the handler and quarantined (it has no type).
func TestHandlerSpecTestVector(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	p := newProviderWith(t, standard.Config{Source: "vector", Secrets: [][]byte{[]byte(vectorSecret)}})
	h, err := webhook.New(store, []webhook.Provider{p}, webhook.Options{
		Logger: slog.New(slog.DiscardHandler),
		Clock:  func() time.Time { return time.Unix(vectorTimestamp, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/vector", bytes.NewReader([]byte(vectorBody)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(standard.HeaderID, vectorID)
	r.Header.Set(standard.HeaderTimestamp, "1614265330")
	r.Header.Set(standard.HeaderSignature, vectorSignature)
	r.SetPathValue("source", "vector")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"quarantined"`)) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	m, err := eventcodec.Metadata(store.Stream(aggregate.QuarantineStream("vector"))[0].Event)
	if err != nil || m.DeliveryID != vectorID || m.Scheme != standard.Scheme {
		t.Fatalf("metadata %+v, %v", m, err)
	}
}
