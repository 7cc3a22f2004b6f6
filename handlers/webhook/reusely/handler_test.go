package reusely_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// fixture serves one Reusely source, "reusely", through the real
// webhook.Handler over a storedouble.MemStoreDouble.
type fixture struct {
	*webhooktest.Server
	t *testing.T
}

func newFixture(t *testing.T, now time.Time) *fixture {
	t.Helper()
	return newFixtureOn(t, storedouble.NewMemStoreDouble(), now)
}

// newFixtureOn is newFixture over an existing log: a restarted process, or
// another ingest node on the same log, with its own Provider and Handler.
func newFixtureOn(t *testing.T, store *storedouble.MemStoreDouble, now time.Time) *fixture {
	t.Helper()
	return &fixture{Server: webhooktest.NewServer(t, store, now, newProvider(t, testSecret, otherSecret)), t: t}
}

// post delivers body with the given Authorization value ("" for none) and
// checks the status code.
func (f *fixture) post(body []byte, authorization string, code int) map[string]string {
	f.t.Helper()
	return webhooktest.Answer(f.t, f.send(body, authorization), code)
}

// send delivers body with the given Authorization value ("" for none): the
// header Reusely signs in.
func (f *fixture) send(body []byte, authorization string) *httptest.ResponseRecorder {
	return f.Post("/webhooks/reusely", authorization, body)
}

// counter reads receiptd_webhook_deliveries_total{source="reusely",outcome}.
func (f *fixture) counter(outcome string) float64 {
	f.t.Helper()
	return f.Counter(f.t, "reusely", outcome)
}

const (
	offerStream = "offer-reusely." + exampleBoxID
	claimStream = "claim-reusely." + createdObjectID + ":" + createdTS
)

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
	checkClaim(t, f.Store, offerStream, body)
	events := f.Store.Stream(offerStream)
	if len(events) != 1 || events[0].Type != aggregate.TypeEntityEventRecordedV2 {
		t.Fatalf("stream %s holds %+v", offerStream, events)
	}
	m, err := eventcodec.Metadata(events[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	slot := "signed:" + createdObjectID + ":" + createdTS
	if m.Source != "reusely" || m.ProviderEventType != "offer.created" || m.Scheme != reusely.SchemeHMACSHA256 ||
		m.KeyID != webhook.KeyID(testSecret) || m.SlotKey != slot || m.DedupeKey != slot+":"+m.BodySHA256 || m.Correction {
		t.Fatalf("metadata %+v", m)
	}

	// Reusely's retry at +10 minutes: the same body, so a duplicate.
	f.Now = f.Now.Add(10 * time.Minute)
	if a := f.post(body, sig, http.StatusOK); a["status"] != "duplicate" {
		t.Fatalf("retry: %v", a)
	}

	// Another body under the same signed pair, same offer: refused, counted.
	other := webhooktest.Replace(t, body, `"Active Leads"`, `"Completed"`)
	f.post(other, sig, http.StatusConflict)
	if n := len(f.Store.Stream(offerStream)); n != 1 {
		t.Fatalf("%d events after the conflict, want 1", n)
	}
	if got := f.counter("conflict"); got != 1 {
		t.Fatalf("conflict counted %v times", got)
	}

	// Another body under the same signed pair, another offer: refused by the
	// claim on the pair, nothing stored.
	moved := webhooktest.Replace(t, body, `"STAG03U2O"`, `"STAG99ZZZ"`)
	f.post(moved, sig, http.StatusUnauthorized)
	if n := len(f.Store.Stream("offer-reusely.STAG99ZZZ")); n != 0 {
		t.Fatalf("%d events in the other box's stream", n)
	}

	// Not signed, signed with another secret, signed for another pair,
	// replayed past the tolerance: 401, nothing stored.
	appends := f.Store.AppendCalls()
	f.post(body, "", http.StatusUnauthorized)
	f.post(other, reusely.Sign([]byte("guessed"), createdObjectID, createdTS), http.StatusUnauthorized)
	f.post(other, reusely.Sign(testSecret, updatedObjectID, updatedTS), http.StatusUnauthorized)
	f.post([]byte("object_id=93092&timestamp=1749441740"), sig, http.StatusUnauthorized)
	late := f.Now
	f.Now = unix(t, createdTS).Add(reusely.DefaultTolerance + time.Second)
	f.post(body, sig, http.StatusUnauthorized)
	f.Now = late

	if got := f.counter("bad_signature"); got != 6 {
		t.Fatalf("bad_signature counted %v times, want 6", got)
	}
	if f.Store.AppendCalls() != appends || f.Store.Count() != 2 { // the claim and the offer
		t.Fatalf("a refused delivery reached the store: %d appends (was %d), %d events", f.Store.AppendCalls(), appends, f.Store.Count())
	}

	// The offer's next event, at its own time, lands in the same stream.
	f.Now = unix(t, updatedTS).Add(time.Second)
	update := loadExample(t, "offer.status.updated")
	if a := f.post(update, reusely.Sign(otherSecret, updatedObjectID, updatedTS), http.StatusOK); a["status"] != "accepted" {
		t.Fatalf("status update: %v", a)
	}
	if n := len(f.Store.Stream(offerStream)); n != 2 {
		t.Fatalf("%d events in %s, want 2", n, offerStream)
	}
}

// checkClaim checks that the claim stream of the created example's pair
// holds one claim, for stream and body.
func checkClaim(t *testing.T, store *storedouble.MemStoreDouble, stream string, body []byte) {
	t.Helper()
	events := store.Stream(claimStream)
	if len(events) != 1 || events[0].Type != aggregate.TypeSignatureClaimed {
		t.Fatalf("claim stream %s holds %+v", claimStream, events)
	}
	var c webhook.SignatureClaimed
	if err := json.Unmarshal(events[0].Data, &c); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if c.Source != "reusely" || c.Claim != createdObjectID+":"+createdTS || c.Stream != stream || c.BodySHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("claim %+v", c)
	}
	offer := store.Stream(stream)
	if len(offer) == 0 || c.EventID != offer[0].ID {
		t.Fatalf("claim names event %s, stream %s holds %+v", c.EventID, stream, offer)
	}
}

// TestHandlerClaimSurvivesRestart is issue 12 item 3: a captured signature
// (Authorization value) carried a new offer, with a payout of 9999.00, for
// another box once the process that had seen its pair was restarted. The
// claim on the pair is in the log: after a restart the forged body is 401
// for another box and 409 for the same one, nothing stored, and the
// genuine retry is still a duplicate.
func TestHandlerClaimSurvivesRestart(t *testing.T) {
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(testSecret, createdObjectID, createdTS)
	at := unix(t, createdTS).Add(2 * time.Second)
	first := newFixture(t, at)
	first.post(body, sig, http.StatusOK)

	forged := webhooktest.Replace(t, webhooktest.Replace(t, body, `"STAG03U2O"`, `"STAG99ZZZ"`), `"960.00"`, `"9999.00"`)
	forgedSameBox := webhooktest.Replace(t, body, `"960.00"`, `"9999.00"`)
	first.post(forged, sig, http.StatusUnauthorized)

	// The restart: a new Provider and Handler (nothing in memory) on the
	// same log, inside the tolerance.
	restarted := newFixtureOn(t, first.Store, at.Add(10*time.Minute))
	stored := restarted.Store.Count()
	restarted.post(forged, sig, http.StatusUnauthorized)
	restarted.post(forgedSameBox, sig, http.StatusConflict)
	if got := restarted.Store.Count(); got != stored {
		t.Fatalf("%d events stored by the forged bodies after the restart", got-stored)
	}
	if n := len(restarted.Store.Stream("offer-reusely.STAG99ZZZ")); n != 0 {
		t.Fatalf("the forged offer was stored: %d events", n)
	}
	if a := restarted.post(body, sig, http.StatusOK); a["status"] != "duplicate" {
		t.Fatalf("genuine retry after the restart: %v", a)
	}
	if restarted.counter("bad_signature") != 1 || restarted.counter("conflict") != 1 {
		t.Fatalf("bad_signature %v, conflict %v; want 1 each", restarted.counter("bad_signature"), restarted.counter("conflict"))
	}
	checkClaim(t, restarted.Store, offerStream, body)
}

// TestHandlerClaimSharedByNodes: two ingest nodes on one log receive
// bodies under one signed pair at once, the genuine one and forgeries for
// other boxes and for the same box: exactly one body is recorded, whichever
// came first, and every other one is refused (401 for another box, 409 for
// the same box) on either node.
func TestHandlerClaimSharedByNodes(t *testing.T) {
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(testSecret, createdObjectID, createdTS)
	at := unix(t, createdTS).Add(2 * time.Second)
	for round := range 20 {
		store := storedouble.NewMemStoreDouble()
		nodes := []*fixture{newFixtureOn(t, store, at), newFixtureOn(t, store, at)}
		bodies := [][]byte{body, body}
		for i := range 6 {
			bodies = append(bodies, webhooktest.Replace(t, body, `"STAG03U2O"`, fmt.Sprintf(`"FORGED%d"`, i%3)))
			bodies = append(bodies, webhooktest.Replace(t, body, `"960.00"`, fmt.Sprintf(`"99%d9.00"`, i%3)))
		}
		codes := make([]int, len(bodies))
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Go(func() { codes[i] = nodes[(i+round)%2].send(b, sig).Code })
		}
		wg.Wait()

		claims := store.Stream(claimStream)
		if len(claims) != 1 {
			t.Fatalf("round %d: %d claims", round, len(claims))
		}
		var c webhook.SignatureClaimed
		if err := json.Unmarshal(claims[0].Data, &c); err != nil {
			t.Fatal(err)
		}
		offers := 0
		for i, b := range bodies {
			sum := sha256.Sum256(b)
			mine := hex.EncodeToString(sum[:]) == c.BodySHA256
			boxStream := "offer-reusely." + exampleBoxID
			if bytes.Contains(b, []byte("FORGED")) {
				boxStream = "offer-reusely.FORGED" + string(b[bytes.Index(b, []byte("FORGED"))+6])
			}
			want := http.StatusOK
			switch {
			case mine:
			case boxStream != c.Stream:
				want = http.StatusUnauthorized
			default:
				want = http.StatusConflict
			}
			if codes[i] != want {
				t.Errorf("round %d: body %d answered %d, want %d (claim %+v)", round, i, codes[i], want, c)
			}
		}
		for _, s := range []string{offerStream, "offer-reusely.FORGED0", "offer-reusely.FORGED1", "offer-reusely.FORGED2"} {
			offers += len(store.Stream(s))
		}
		if offers != 1 || store.Count() != 2 {
			t.Fatalf("round %d: %d offer events, %d events in all; want 1 and 2", round, offers, store.Count())
		}
	}
}

// TestHandlerQuarantinesUnknownEvent: a signed delivery of an event type
// this version does not know is kept, not dropped.
func TestHandlerQuarantinesUnknownEvent(t *testing.T) {
	body := webhooktest.Replace(t, loadExample(t, "offer.created"), `"offer.created"`, `"offer.deleted"`)
	f := newFixture(t, unix(t, createdTS))
	if a := f.post(body, reusely.Sign(testSecret, createdObjectID, createdTS), http.StatusOK); a["status"] != "quarantined" {
		t.Fatalf("answer %v", a)
	}
	if n := len(f.Store.Stream(aggregate.QuarantineStream("reusely"))); n != 1 {
		t.Fatalf("%d quarantined events, want 1", n)
	}
}
