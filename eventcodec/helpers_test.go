package eventcodec_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/bench/benchdata"
	"github.com/receiptd/receiptd/examples"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/shopspring/decimal"
)

// A testFact is a normalized delivery with what the handler stores beside
// it.
type testFact struct {
	name string
	id   string
	fact aggregate.Fact
	meta aggregate.Metadata
	body []byte
}

var receivedAt = time.Date(2025, 11, 21, 15, 5, 3, 123456789, time.UTC)

func providers(tb testing.TB) map[string]webhook.Provider {
	tb.Helper()
	rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte("bench-secret-0123456789")}})
	if err != nil {
		tb.Fatal(err)
	}
	rd, err := reward.New(reward.Config{Source: "reward", Tokens: [][]byte{[]byte("reward-token-0123456789")}, BalanceSource: "reewild"})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]webhook.Provider{"reewild": rw, "reward": rd}
}

// normalize turns a body into a testFact as the webhook handler would.
func normalize(tb testing.TB, p webhook.Provider, source, name string, body []byte) testFact {
	tb.Helper()
	d := webhook.Delivery{Body: body, BodySHA256: sha(body), ReceivedAt: receivedAt,
		Verification: webhook.Verification{Scheme: "hmac-sha256", KeyID: "sha256:0badc0de"}}
	n, err := p.Normalize(d)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	id := webhook.EventID(source, n.Fact.DedupeKey, d.BodySHA256)
	return testFact{
		name: name, id: id, fact: n.Fact, body: body,
		meta: aggregate.Metadata{
			Source: source, ProviderEventType: n.EventType, DeliveryID: n.DeliveryID, ReceivedAt: receivedAt,
			Scheme: d.Verification.Scheme, KeyID: d.Verification.KeyID, BodySHA256: d.BodySHA256,
			DedupeKey: n.Fact.DedupeKey, SlotKey: n.Fact.SlotKey, CorrelationID: id, CausationID: id,
		},
	}
}

// seedFacts normalizes the example payloads of Reewild and Reward.
func seedFacts(tb testing.TB) []testFact {
	tb.Helper()
	ps := providers(tb)
	var out []testFact
	for _, source := range []string{"reewild", "reward"} {
		names, err := fs.Glob(examples.Payloads, source+"/*.json")
		if err != nil || len(names) == 0 {
			tb.Fatalf("examples of %s: %v", source, err)
		}
		for _, name := range names {
			body, err := fs.ReadFile(examples.Payloads, name)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, normalize(tb, ps[source], source, strings.TrimSuffix(path.Base(name), ".json"), body))
		}
	}
	return out
}

// benchFacts normalizes the bench's deliveries of receipts: every kind of
// delivery the load test sends, n receipts' worth.
func benchFacts(tb testing.TB, n int) []testFact {
	tb.Helper()
	p := providers(tb)["reewild"]
	u := benchdata.Universe{Seed: 1, Users: n, Receipts: n}
	out := make([]testFact, 0, u.Size())
	for k := range u.Size() {
		body := u.Delivery(nil, k)
		var env struct {
			EventType string `json:"eventType"`
		}
		_ = json.Unmarshal(body, &env)
		out = append(out, normalize(tb, p, "reewild", env.EventType, body))
	}
	return out
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func ptr[T any](v T) *T { return &v }

// oddFacts are facts no example produces: every optional field set, odd
// values (decimals past 64 bits, negative exponents, times with offsets, a
// body hash that is not hex, a stage outside the enum), and the kinds no
// Reewild or Reward example makes.
func oddFacts() []testFact {
	big, _ := decimal.NewFromString("-123456789012345678901234567890.000100")
	at := time.Date(2025, 10, 8, 11, 47, 0, 5, time.FixedZone("", 5*3600+30*60))
	body := []byte("{\"weird\" :  [1, 2.50, \"M&S <Foods>\"],\n \"x\":\"\\u00e9\"}\n")
	hash := sha(body)
	meta := func(id, dedupe, slot string) aggregate.Metadata {
		return aggregate.Metadata{
			Source: "odd", ProviderEventType: "odd.event", DeliveryID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
			ReceivedAt: receivedAt, Scheme: "standard-webhooks", KeyID: "k1", BodySHA256: hash,
			DedupeKey: dedupe, SlotKey: slot, Correction: true, CorrelationID: "corr-" + id, CausationID: "",
		}
	}
	return []testFact{
		{
			name: "stage-odd", id: "11111111-2222-5333-8444-555555555555", body: body,
			fact: aggregate.Fact{Stream: "receipt-odd.r1", Type: aggregate.TypeReceiptStageRecorded, DedupeKey: "x:r1:" + hash, Data: aggregate.StageRecorded{
				Source: "odd", ReceiptID: "r1", UserID: "u1", Stage: "SOMETHING_NEW", OccurredAt: &at, BodySHA256: "not-a-hash",
				Merchant: "M&S <Foods>", Currency: "GBP", Amount: &big,
				Award: &aggregate.Award{TransactionID: "t", Points: decimal.New(165654, -2), BonusPoints: decimal.New(-1, 3),
					HealthPoints: decimal.Zero, CO2e: big, GreenProducts: -3,
					Snapshot: &aggregate.Snapshot{AvailablePoints: big, LifetimePoints: decimal.New(1, -30), NumTransactions: 1 << 40}},
				Failure: &aggregate.Failure{Code: -5, Name: "FAILED_VALIDATE", Message: "ünïcode"},
			}},
			meta: meta("11111111-2222-5333-8444-555555555555", "x:r1:"+hash, "stage:SOMETHING_NEW"),
		},
		{
			name: "quarantined", id: "q-1", body: body,
			fact: aggregate.Fact{Stream: "quarantine-odd", Type: aggregate.TypeDeliveryQuarantined, DedupeKey: "quarantined:" + hash, Data: &aggregate.Quarantined{
				Source: "odd", ProviderEventType: "odd.event", Reason: "reewild: unknown event type", BodySHA256: hash,
			}},
			meta: meta("q-1", "quarantined:"+hash, ""),
		},
		{
			name: "entity", id: "e-1", body: body,
			fact: aggregate.Fact{Stream: "order-odd.o1", Type: aggregate.TypeEntityEventRecorded, DedupeKey: "o1", Data: aggregate.EntityEventRecorded{
				Source: "odd", Kind: "order", EntityID: "o1", EventType: "order.paid", Status: "paid", StatusAt: &at,
				OccurredAt: ptr(receivedAt), Amount: ptr(decimal.New(1999, -2)), Currency: "EUR", UserID: "u1",
				Attributes: map[string]string{"z": "1", "a": "2", "m": ""}, BodySHA256: hash,
			}},
			meta: meta("e-1", "o1", ""),
		},
		{
			name: "credit", id: "c-1", body: nil,
			fact: aggregate.Fact{Stream: "user-odd.u1", Type: aggregate.TypeUserPointsCredited, DedupeKey: "c:" + hash, Data: aggregate.PointsCredited{
				Source: "odd", UserID: "u1", BalanceSource: "reewild", TransactionID: "tx", Points: decimal.New(50, 0),
				OccurredAt: &at, BodySHA256: hash, Description: "bonus", Amount: &big,
			}},
			meta: meta("c-1", "c:"+hash, ""),
		},
		{
			name: "enrolled-empty", id: "u-1", body: []byte{},
			fact: aggregate.Fact{Stream: "user-odd.u2", Type: aggregate.TypeUserEnrolled, DedupeKey: "d", Data: aggregate.UserEnrolled{}},
			meta: aggregate.Metadata{DedupeKey: "d"},
		},
	}
}

// encodeJSON is how the webhook handler wrote v1 data and metadata.
func encodeJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// v1Event is the event the webhook handler appended for f before v2.
func v1Event(tb testing.TB, f testFact) aggregate.Event {
	tb.Helper()
	return aggregate.Event{ID: f.id, Type: f.fact.Type, Data: encodeJSON(tb, withRaw(f.fact.Data, f.body)), Metadata: encodeJSON(tb, f.meta)}
}

// withRaw returns data (a fact's payload struct) with its Raw field set.
func withRaw(data any, raw []byte) any {
	switch d := data.(type) {
	case aggregate.StageRecorded:
		d.Raw = raw
		return d
	case aggregate.UserEnrolled:
		d.Raw = raw
		return d
	case *aggregate.Quarantined:
		c := *d
		c.Raw = raw
		return c
	case aggregate.Quarantined:
		d.Raw = raw
		return d
	case aggregate.PointsCredited:
		d.Raw = raw
		return d
	case aggregate.EntityEventRecorded:
		d.Raw = raw
		return d
	}
	panic("unknown data type")
}
