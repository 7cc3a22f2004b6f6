package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/handlers/webhook"
)

// claimDouble is a webhook.Provider whose "signature" covers only the
// body's "claim" field, as Reusely's covers only object_id and timestamp:
// {"id":…,"claim":…} is a fact on offer-{source}.{id} with that claim.
// While quarantining is set, every delivery is an unknown event type.
type claimDouble struct {
	source       string
	quarantining atomic.Bool
}

func (p *claimDouble) Source() string { return p.source }
func (p *claimDouble) Kind() string   { return "claim-double" }

func (p *claimDouble) Verify(*http.Request, []byte, time.Time) (webhook.Verification, error) {
	return webhook.Verification{Scheme: "claim-double"}, nil
}

func (p *claimDouble) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	var body struct {
		ID    string `json:"id"`
		Claim string `json:"claim"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil || body.ID == "" {
		return webhook.Normalized{}, fmt.Errorf("claim double: %w", aggregate.ErrUnnormalizable)
	}
	if p.quarantining.Load() {
		return webhook.Normalized{EventType: "offer.updated"}, fmt.Errorf("claim double: %w", aggregate.ErrUnknownEvent)
	}
	return webhook.Normalized{
		EventType: "offer.updated",
		Claim:     body.Claim,
		Fact: aggregate.Fact{
			Stream: aggregate.StreamID(aggregate.CategoryOffer, p.source, body.ID),
			Type:   aggregate.TypeEntityEventRecorded,
			Data: aggregate.EntityEventRecorded{
				Source: p.source, Kind: aggregate.CategoryOffer, EntityID: body.ID, EventType: "offer.updated", BodySHA256: d.BodySHA256,
			},
			DedupeKey:  body.Claim + ":" + d.BodySHA256,
			SlotKey:    body.Claim,
			OnConflict: aggregate.Reject,
		},
	}, nil
}

func claimOf(t *testing.T, e eventstore.RecordedEvent) webhook.SignatureClaimed {
	t.Helper()
	var c webhook.SignatureClaimed
	if e.Type != aggregate.TypeSignatureClaimed {
		t.Fatalf("%s event in a claim stream", e.Type)
	}
	if err := json.Unmarshal(e.Data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClaim: the first delivery under a claim binds it to its stream and
// body; the same body again is a duplicate, another body for the same
// stream 409, for another stream 401, and neither stores anything.
func TestClaim(t *testing.T) {
	p := &claimDouble{source: "signed"}
	f := newFixture(t, webhook.Options{}, p)
	post := func(body string) *httptest.ResponseRecorder {
		return f.do(request("signed", []byte(body), nil))
	}
	first := `{"id":"o1","claim":"7:1749441740","payout":"960.00"}`
	a := expect(t, post(first), http.StatusOK, "accepted")
	claims := f.store.Stream(webhook.ClaimStream("signed", "7:1749441740"))
	if len(claims) != 1 {
		t.Fatalf("%d claim events", len(claims))
	}
	offer := f.store.Stream("offer-signed.o1")
	c := claimOf(t, claims[0])
	if c.Source != "signed" || c.Claim != "7:1749441740" || c.Stream != "offer-signed.o1" || c.BodySHA256 != sha([]byte(first)) ||
		len(offer) != 1 || c.EventID != offer[0].ID || offer[0].Position.String() != a.Position || !claims[0].Position.Less(offer[0].Position) {
		t.Fatalf("claim %+v at %v, offer %+v", c, claims[0].Position, offer)
	}
	m := metadataOf(t, claims[0])
	if m.Source != "signed" || m.BodySHA256 != c.BodySHA256 || m.DedupeKey != "claim:7:1749441740" || m.SlotKey != "" || m.CorrelationID != offer[0].ID {
		t.Fatalf("claim metadata %+v", m)
	}

	if d := expect(t, post(first), http.StatusOK, "duplicate"); d.Position != a.Position {
		t.Fatalf("duplicate answered position %s, want %s", d.Position, a.Position)
	}
	expect(t, post(`{"id":"o1","claim":"7:1749441740","payout":"9999.00"}`), http.StatusConflict, "")
	expect(t, post(`{"id":"o2","claim":"7:1749441740","payout":"9999.00"}`), http.StatusUnauthorized, "")
	expect(t, post(`{"id":"o2","claim":"7:1749441740","payout":"960.00"}`), http.StatusUnauthorized, "")
	if f.store.Count() != 2 || len(f.store.Stream("offer-signed.o2")) != 0 {
		t.Fatalf("%d events after the refusals, want the claim and the offer", f.store.Count())
	}
	if counter(t, f.reg, "signed", "conflict") != 1 || counter(t, f.reg, "signed", "bad_signature") != 2 {
		t.Fatal("refusals not counted as conflict and bad_signature")
	}
	// Another claim for the same stream is a fact of its own.
	expect(t, post(`{"id":"o1","claim":"8:1749441800"}`), http.StatusOK, "accepted")

	// No claim, no claim stream: the slot decides, as for every provider.
	expect(t, post(`{"id":"o3"}`), http.StatusOK, "accepted")
	if f.store.Count() != 5 {
		t.Fatalf("%d events, want 5", f.store.Count())
	}
}

// TestClaimThenCrash: a claim appended whose fact was not (the append
// failed, as after a crash or a timeout between the two) does not lock the
// genuine body out: its retry is recorded.
func TestClaimThenCrash(t *testing.T) {
	p := &claimDouble{source: "signed"}
	f := newFixture(t, webhook.Options{}, p)
	body := []byte(`{"id":"o1","claim":"7:1749441740"}`)
	f.store.OnAppend = func(_ context.Context, stream string, _ int) error {
		if strings.HasPrefix(stream, "offer-") {
			return fmt.Errorf("fsync: %w", eventstore.ErrUnavailable)
		}
		return nil
	}
	expect(t, f.do(request("signed", body, nil)), http.StatusServiceUnavailable, "")
	if f.store.Count() != 1 {
		t.Fatalf("%d events, want the claim alone", f.store.Count())
	}
	f.store.SetOnAppend(nil)
	expect(t, f.do(request("signed", []byte(`{"id":"o2","claim":"7:1749441740"}`), nil)), http.StatusUnauthorized, "")
	expect(t, f.do(request("signed", body, nil)), http.StatusOK, "accepted")
	expect(t, f.do(request("signed", body, nil)), http.StatusOK, "duplicate")
	if f.store.Count() != 2 {
		t.Fatalf("%d events, want the claim and the offer", f.store.Count())
	}
}

// TestClaimRefusesBadClaims: a claim that cannot name a stream, or a fact
// aimed at a claim stream, is a provider's bug: quarantined.
func TestClaimRefusesBadClaims(t *testing.T) {
	p := &claimDouble{source: "signed"}
	rogue := &providerDouble{source: "rogue", stream: "claim-rogue.7:1749441740"}
	f := newFixture(t, webhook.Options{}, p, rogue)
	for _, body := range []string{
		`{"id":"o1","claim":"7 1749441740"}`,
		`{"id":"o1","claim":"` + strings.Repeat("7", 257) + `"}`,
		`{"id":"o1","claim":"7\n1749441740"}`,
	} {
		expect(t, f.do(request("signed", []byte(body), nil)), http.StatusOK, "quarantined")
	}
	expect(t, f.do(request("rogue", []byte(`{"id":"o1"}`), nil)), http.StatusOK, "quarantined")
	if n := len(f.store.Stream("claim-rogue.7:1749441740")); n != 0 {
		t.Fatalf("a provider wrote %d events into a claim stream", n)
	}
	if len(f.store.Stream("offer-signed.o1")) != 0 {
		t.Fatal("a fact with a bad claim was recorded")
	}
}

// TestReprocessChecksTheClaim: a delivery quarantined under a claim that
// another body took meanwhile stays quarantined when re-processed, with
// the reason; one whose claim is free is recorded and claims it.
func TestReprocessChecksTheClaim(t *testing.T) {
	p := &claimDouble{source: "signed"}
	f := newFixture(t, webhook.Options{}, p)
	h, err := webhook.New(f.store, []webhook.Provider{p}, webhook.Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p.quarantining.Store(true)
	expect(t, f.do(request("signed", []byte(`{"id":"forged","claim":"7:1749441740"}`), nil)), http.StatusOK, "quarantined")
	expect(t, f.do(request("signed", []byte(`{"id":"o2","claim":"8:1749441800"}`), nil)), http.StatusOK, "quarantined")
	p.quarantining.Store(false)
	expect(t, f.do(request("signed", []byte(`{"id":"o1","claim":"7:1749441740"}`), nil)), http.StatusOK, "accepted")

	q := f.store.Stream(aggregate.QuarantineStream("signed"))
	if len(q) != 2 {
		t.Fatalf("%d quarantined", len(q))
	}
	ctx := context.Background()
	got, err := h.Reprocess(ctx, q[0])
	if err != nil || got.Outcome != "quarantined" || !strings.Contains(got.Reason, "another stream") || got.Position != q[0].Position {
		t.Fatalf("re-processed the forged delivery: %+v, %v", got, err)
	}
	if len(f.store.Stream("offer-signed.forged")) != 0 {
		t.Fatal("the forged delivery was recorded")
	}
	got, err = h.Reprocess(ctx, q[1])
	if err != nil || got.Outcome != "accepted" || got.Stream != "offer-signed.o2" {
		t.Fatalf("re-processed the free one: %+v, %v", got, err)
	}
	if c := f.store.Stream(webhook.ClaimStream("signed", "8:1749441800")); len(c) != 1 || claimOf(t, c[0]).Stream != "offer-signed.o2" {
		t.Fatalf("claim of the re-processed delivery: %+v", c)
	}
}
