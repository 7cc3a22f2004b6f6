package reusely_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

// fuzzNow is when the fuzzed deliveries arrive: just after the seed
// example's timestamp.
var fuzzNow = time.Unix(1749441740, 0).Add(90 * time.Second).UTC()

// signedText returns the text of a body's top-level member as a signature
// would cover it (a string's value, a number's text), read independently of
// the provider's own decoder.
func signedText(body []byte, name string) (string, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return "", false
	}
	raw, ok := top[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return string(raw), true
}

// FuzzVerify: an arbitrary body and Authorization value verify only if the
// value is the HMAC of the body's own object_id and timestamp and the
// timestamp is within the tolerance; a body built around a signed pair
// verifies under its own signature and never under another pair's. Nothing
// panics, and every failure is ErrUnauthenticated.
func FuzzVerify(f *testing.F) {
	for _, ex := range loadExamples(f) {
		oid, _ := signedText(ex.Body, "object_id")
		ts, _ := signedText(ex.Body, "timestamp")
		f.Add(ex.Body, testSecret, reusely.Sign(testSecret, oid, ts), uint64(93092), int64(0))
	}
	f.Add([]byte(`{"object_id":"1","timestamp":1749441800,"data":{"box_id":"B"}}`), []byte("k"), reusely.Sign([]byte("k"), "1", "1749441800"), uint64(0), int64(-3599))
	f.Add([]byte(`{"object_id":930921,"timestamp":"749441740"}`), testSecret, reusely.Sign(testSecret, "93092", "1749441740"), uint64(1<<63), int64(3601))
	f.Add([]byte(`not json`), []byte("k\x00"), strings.Repeat("0", 64), uint64(7), int64(1))

	f.Fuzz(func(t *testing.T, body, secret []byte, header string, objectID uint64, skew int64) {
		if len(secret) == 0 {
			return
		}
		verify := func(b []byte, sig string) bool {
			p := newProvider(t, secret) // fresh: the pair guard is not under test here
			v, err := p.Verify(requestWith(b, sig), b, fuzzNow)
			if err != nil {
				if !errors.Is(err, webhook.ErrUnauthenticated) {
					t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
				}
				if strings.Contains(err.Error(), string(secret)) && len(secret) > 8 {
					t.Fatalf("Verify error %q reveals the secret", err)
				}
				return false
			}
			if v.Scheme != reusely.SchemeHMACSHA256 || v.KeyID != webhook.KeyID(secret) {
				t.Fatalf("Verification %+v", v)
			}
			return true
		}

		// The arbitrary delivery.
		if verify(body, header) {
			oid, ok1 := signedText(body, "object_id")
			ts, ok2 := signedText(body, "timestamp")
			if !ok1 || !ok2 {
				t.Fatalf("verified a body without both signed fields: %q", body)
			}
			if !strings.EqualFold(strings.TrimSpace(header), reusely.Sign(secret, oid, ts)) {
				t.Fatalf("header %q verified but is not the signature of (%q, %q)", header, oid, ts)
			}
			n, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				t.Fatalf("verified a non-integer timestamp %q", ts)
			}
			if d := fuzzNow.Sub(time.Unix(n, 0)); d > reusely.DefaultTolerance || d < -reusely.DefaultTolerance {
				t.Fatalf("verified timestamp %q, %v away", ts, d)
			}
		}

		// A body built around a signed pair.
		skew %= int64(2 * reusely.DefaultTolerance / time.Second)
		ts := strconv.FormatInt(fuzzNow.Unix()+skew, 10)
		oid := strconv.FormatUint(objectID%1e18, 10) // at most 18 digits
		built, err := json.Marshal(map[string]any{
			"object": "event", "object_id": json.Number(oid), "timestamp": ts,
			"type": "offer.created", "data": map[string]any{"box_id": "B", "note": string(body)},
		})
		if err != nil {
			t.Fatal(err)
		}
		within := skew >= -int64(reusely.DefaultTolerance/time.Second) && skew <= int64(reusely.DefaultTolerance/time.Second)
		if got := verify(built, reusely.Sign(secret, oid, ts)); got != within {
			t.Fatalf("own signature, skew %ds: verified = %v", skew, got)
		}
		if verify(built, reusely.Sign(secret, oid+"0", ts)) || verify(built, reusely.Sign(secret, oid, ts+"0")) {
			t.Fatal("signature of another pair verified")
		}
		if verify(built, reusely.Sign(append(append([]byte(nil), secret...), 'x'), oid, ts)) {
			t.Fatal("signature made with another secret verified")
		}
	})
}

// FuzzNormalize: Normalize never panics; it fails only with ErrUnknownEvent
// or ErrUnnormalizable; a success names an offer stream of the source, the
// signed pair as its slot with the Reject policy, and data that encodes to
// JSON keeping the body.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Add([]byte(`{"object_id":"1","timestamp":1,"type":"offer.status.updated","data":{"box_id":7,"payout_amount":-0.0e+5,"status":""}}`))
	f.Add([]byte(`{"object_id":1,"timestamp":"1","type":"offer.created","data":null}`))
	f.Add([]byte(`{"OBJECT_ID":1,"timestamp":"1","type":"offer.created","data":{"box_id":"b"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, testSecret)
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Normalize(delivery(t, body))
		if webhooktest.Refused(t, err) {
			return
		}
		fact := n.Fact
		category, source, id, err := aggregate.ParseStreamID(fact.Stream)
		if err != nil || category != aggregate.CategoryOffer || source != "reusely" || id == "" {
			t.Fatalf("stream %q: %s %s %s %v", fact.Stream, category, source, id, err)
		}
		oid, _ := signedText(body, "object_id")
		ts, _ := signedText(body, "timestamp")
		slot := "signed:" + oid + ":" + ts
		if fact.SlotKey != slot || !strings.HasPrefix(fact.DedupeKey, slot+":") || fact.OnConflict != aggregate.Reject || fact.Type != aggregate.TypeEntityEventRecorded {
			t.Fatalf("fact %+v, want slot %q", fact, slot)
		}
		if got := webhooktest.CheckAccepted(t, body, fact); got != id {
			t.Fatalf("data's entity id %q, want %q", got, id)
		}
	})
}
