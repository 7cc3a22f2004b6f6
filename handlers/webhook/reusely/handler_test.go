package reusely_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/storedouble"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

// fixture serves one Reusely source, "reusely", through the real
// webhook.Handler over a storedouble.MemStoreDouble.
type fixture struct {
	t     *testing.T
	store *storedouble.MemStoreDouble
	reg   *prometheus.Registry
	mux   *http.ServeMux
	now   time.Time
}

func newFixture(t *testing.T, now time.Time) *fixture {
	t.Helper()
	p := newProvider(t, testSecret, otherSecret)
	f := &fixture{t: t, store: storedouble.NewMemStoreDouble(), reg: prometheus.NewRegistry(), mux: http.NewServeMux(), now: now}
	h, err := webhook.New(f.store, []webhook.Provider{p}, webhook.Options{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: webhook.NewMetrics(f.reg),
		Clock:   func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Register(f.mux)
	return f
}

// post delivers body with the given Authorization value ("" for none) and
// checks the status code.
func (f *fixture) post(body []byte, authorization string, code int) map[string]string {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/reusely", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		r.Header.Set(reusely.SignatureHeader, authorization)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != code {
		f.t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	var answer map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
		f.t.Fatalf("answer %q: %v", w.Body, err)
	}
	return answer
}

// counter reads receiptd_webhook_deliveries_total{source="reusely",outcome}.
func (f *fixture) counter(outcome string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "receiptd_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == "reusely" && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

const offerStream = "offer-reusely." + exampleBoxID

// TestHandlerSignedPair runs the seed's delivery through the generic
// handler: accepted once, a duplicate when the same body comes again, 409
// when another body comes under the same signed pair, 401 with nothing
// stored when the signature does not hold.
func TestHandlerSignedPair(t *testing.T) {
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(testSecret, createdObjectID, createdTS)
	f := newFixture(t, unix(t, createdTS).Add(2*time.Second))

	if a := f.post(body, sig, http.StatusOK); a["status"] != "accepted" {
		t.Fatalf("first delivery: %v", a)
	}
	events := f.store.Stream(offerStream)
	if len(events) != 1 || events[0].Type != aggregate.TypeEntityEventRecorded {
		t.Fatalf("stream %s holds %+v", offerStream, events)
	}
	m, err := aggregate.DecodeMetadata(events[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	slot := "signed:" + createdObjectID + ":" + createdTS
	if m.Source != "reusely" || m.ProviderEventType != "offer.created" || m.Scheme != reusely.SchemeHMACSHA256 ||
		m.KeyID != webhook.KeyID(testSecret) || m.SlotKey != slot || m.DedupeKey != slot+":"+m.BodySHA256 || m.Correction {
		t.Fatalf("metadata %+v", m)
	}

	// Reusely's retry at +10 minutes: the same body, so a duplicate.
	f.now = f.now.Add(10 * time.Minute)
	if a := f.post(body, sig, http.StatusOK); a["status"] != "duplicate" {
		t.Fatalf("retry: %v", a)
	}

	// Another body under the same signed pair, same offer: refused, counted.
	other := replace(t, body, `"Active Leads"`, `"Completed"`)
	f.post(other, sig, http.StatusConflict)
	if n := len(f.store.Stream(offerStream)); n != 1 {
		t.Fatalf("%d events after the conflict, want 1", n)
	}
	if got := f.counter("conflict"); got != 1 {
		t.Fatalf("conflict counted %v times", got)
	}

	// Another body under the same signed pair, another offer: refused by the
	// pair guard before anything is read or stored.
	appends := f.store.AppendCalls()
	moved := replace(t, body, `"STAG03U2O"`, `"STAG99ZZZ"`)
	f.post(moved, sig, http.StatusUnauthorized)

	// Not signed, signed with another secret, signed for another pair,
	// replayed past the tolerance: 401, nothing stored.
	f.post(body, "", http.StatusUnauthorized)
	f.post(other, reusely.Sign([]byte("guessed"), createdObjectID, createdTS), http.StatusUnauthorized)
	f.post(other, reusely.Sign(testSecret, updatedObjectID, updatedTS), http.StatusUnauthorized)
	f.post([]byte("object_id=93092&timestamp=1749441740"), sig, http.StatusUnauthorized)
	late := f.now
	f.now = unix(t, createdTS).Add(reusely.DefaultTolerance + time.Second)
	f.post(body, sig, http.StatusUnauthorized)
	f.now = late

	if got := f.counter("bad_signature"); got != 6 {
		t.Fatalf("bad_signature counted %v times, want 6", got)
	}
	if f.store.AppendCalls() != appends || f.store.Count() != 1 {
		t.Fatalf("a refused delivery reached the store: %d appends (was %d), %d events", f.store.AppendCalls(), appends, f.store.Count())
	}

	// The offer's next event, at its own time, lands in the same stream.
	f.now = unix(t, updatedTS).Add(time.Second)
	update := loadExample(t, "offer.status.updated")
	if a := f.post(update, reusely.Sign(otherSecret, updatedObjectID, updatedTS), http.StatusOK); a["status"] != "accepted" {
		t.Fatalf("status update: %v", a)
	}
	if n := len(f.store.Stream(offerStream)); n != 2 {
		t.Fatalf("%d events in %s, want 2", n, offerStream)
	}
}

// TestHandlerQuarantinesUnknownEvent: a signed delivery of an event type
// this version does not know is kept, not dropped.
func TestHandlerQuarantinesUnknownEvent(t *testing.T) {
	body := replace(t, loadExample(t, "offer.created"), `"offer.created"`, `"offer.deleted"`)
	f := newFixture(t, unix(t, createdTS))
	if a := f.post(body, reusely.Sign(testSecret, createdObjectID, createdTS), http.StatusOK); a["status"] != "quarantined" {
		t.Fatalf("answer %v", a)
	}
	if n := len(f.store.Stream(aggregate.QuarantineStream("reusely"))); n != 1 {
		t.Fatalf("%d quarantined events, want 1", n)
	}
}
