package reward_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
)

func normalize(tb testing.TB, p *reward.Provider, body []byte) webhook.Normalized {
	tb.Helper()
	return webhooktest.Normalize(tb, p, delivery(body))
}

func TestNormalizeGolden(t *testing.T) {
	p := newProvider(t, reward.Config{})
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			webhooktest.Golden(t, ex.Name, normalize(t, p, ex.Body))
		})
	}
}

// TestNormalizeExamples states the mapping of each example directly, so
// that a wrong golden file cannot hide a wrong mapping.
func TestNormalizeExamples(t *testing.T) {
	const user = "ca9bb5c2-25a6-43e9-972e-862d28241a47"
	p := newProvider(t, reward.Config{})

	t.Run(reward.EventTriggerCreated, func(t *testing.T) {
		body := loadExample(t, reward.EventTriggerCreated)
		n := normalize(t, p, body)
		checkFact(t, n, "user-reward."+user, aggregate.TypeEntityEventRecorded, "envelope:we_01jf2wkmvcfw6ts1qmgzya291c")
		if n.EventType != reward.EventTriggerCreated || n.DeliveryID != "we_01jf2wkmvcfw6ts1qmgzya291c" || n.Reply != nil {
			t.Fatalf("EventType, DeliveryID, Reply = %q, %q, %v", n.EventType, n.DeliveryID, n.Reply)
		}
		got, ok := n.Fact.Data.(aggregate.EntityEventRecorded)
		if !ok {
			t.Fatalf("Data is %T", n.Fact.Data)
		}
		when := time.Date(2024, 12, 14, 15, 29, 18, 821000000, time.UTC)
		if got.Source != "reward" || got.Kind != "user" || got.EntityID != user || got.UserID != user ||
			got.EventType != reward.EventTriggerCreated || got.OccurredAt == nil || !got.OccurredAt.Equal(when) ||
			got.Status != "" || got.StatusAt != nil || got.Amount != nil || got.Currency != "" ||
			got.BodySHA256 != delivery(body).BodySHA256 || !bytes.Equal(got.Raw, body) {
			t.Fatalf("Data = %+v", got)
		}
		if want := map[string]string{"trigger_id": "successful_payment", "value": "2.99"}; !maps.Equal(got.Attributes, want) {
			t.Fatalf("Attributes = %v, want %v", got.Attributes, want)
		}
	})

	t.Run(reward.EventCreditIssued, func(t *testing.T) {
		body := loadExample(t, reward.EventCreditIssued)
		n := normalize(t, p, body)
		checkFact(t, n, "user-reward."+user, aggregate.TypeUserPointsCredited, "credit:tx_01jf31q8bz6w3n5p2g8rdy1k7s")
		if n.EventType != reward.EventCreditIssued || n.DeliveryID != "we_01jf31q8c2hv7rd5x0kzmt4e9b" {
			t.Fatalf("EventType, DeliveryID = %q, %q", n.EventType, n.DeliveryID)
		}
		got, ok := n.Fact.Data.(aggregate.PointsCredited)
		if !ok {
			t.Fatalf("Data is %T", n.Fact.Data)
		}
		when := time.Date(2024, 12, 14, 15, 29, 19, 407000000, time.UTC)
		if got.Source != "reward" || got.UserID != user || got.BalanceSource != "reward" ||
			got.TransactionID != "tx_01jf31q8bz6w3n5p2g8rdy1k7s" || !got.Points.Equal(decimal.NewFromInt(150)) ||
			got.OccurredAt == nil || !got.OccurredAt.Equal(when) ||
			got.BodySHA256 != delivery(body).BodySHA256 || !bytes.Equal(got.Raw, body) {
			t.Fatalf("Data = %+v", got)
		}
	})
}

func checkFact(t *testing.T, n webhook.Normalized, stream, typ, dedupe string) {
	t.Helper()
	f := n.Fact
	if f.Stream != stream || f.Type != typ || f.DedupeKey != dedupe || f.SlotKey != "" || f.OnConflict != aggregate.Correct {
		t.Fatalf("fact = {%s %s %s %q %v}, want {%s %s %s \"\" Correct}", f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict, stream, typ, dedupe)
	}
}

func TestNormalizeBalanceSource(t *testing.T) {
	p := newProvider(t, reward.Config{BalanceSource: "reewild"})
	n := normalize(t, p, loadExample(t, reward.EventCreditIssued))
	got := n.Fact.Data.(aggregate.PointsCredited)
	if got.BalanceSource != "reewild" || got.Source != "reward" {
		t.Fatalf("BalanceSource, Source = %q, %q", got.BalanceSource, got.Source)
	}
	// The stream stays the crediting source's: the handler refuses a fact
	// on another source's stream.
	if n.Fact.Stream != "user-reward.ca9bb5c2-25a6-43e9-972e-862d28241a47" {
		t.Fatalf("Stream = %q", n.Fact.Stream)
	}
}

// TestNormalizeDuplicates: what makes two deliveries the same fact.
func TestNormalizeDuplicates(t *testing.T) {
	p := newProvider(t, reward.Config{})
	credit := func(envelope, tx, amount string) []byte {
		return []byte(`{"id":"` + envelope + `","type":"balance.credit_points_issued","time":"2024-12-14T15:29:19Z","data":{"user":{"id":"u1"},"transaction":{"id":"` + tx + `","amount":` + amount + `}}}`)
	}
	trigger := func(envelope, value string) []byte {
		if envelope == "" {
			return []byte(`{"type":"trigger_event.created","data":{"user":{"id":"u1"},"value":` + value + `,"trigger":{"id":"t"}}}`)
		}
		return []byte(`{"id":"` + envelope + `","type":"trigger_event.created","data":{"user":{"id":"u1"},"value":` + value + `,"trigger":{"id":"t"}}}`)
	}
	key := func(body []byte) string { return normalize(t, p, body).Fact.DedupeKey }

	a, b := credit("we_a", "tx_1", "150"), credit("we_b", "tx_1", "150")
	if key(a) != key(b) || key(a) != "credit:tx_1" {
		t.Fatalf("one transaction under two envelope ids: keys %q and %q, want both credit:tx_1", key(a), key(b))
	}
	if normalize(t, p, a).Fact.Stream != normalize(t, p, b).Fact.Stream {
		t.Fatal("one transaction under two envelope ids went to two streams")
	}
	if key(credit("we_a", "tx_1", "150")) == key(credit("we_a", "tx_2", "150")) {
		t.Fatal("two transactions share a dedupe key")
	}
	if key(trigger("we_c", "1")) != key(trigger("we_c", "1")) || key(trigger("we_c", "1")) != "envelope:we_c" {
		t.Fatal("a re-delivered trigger event is not keyed by its envelope id")
	}
	if key(trigger("we_c", "1")) == key(trigger("we_d", "1")) {
		t.Fatal("two trigger events with two envelope ids share a dedupe key")
	}
	// Without an envelope id the body identifies the delivery.
	noID := trigger("", "1")
	if got, want := key(noID), "body:"+delivery(noID).BodySHA256; got != want {
		t.Fatalf("no id: key %q, want %q", got, want)
	}
	if key(trigger("", "1")) == key(trigger("", "2")) {
		t.Fatal("two different bodies without ids share a dedupe key")
	}
	emptyID := []byte(`{"id":"","type":"trigger_event.created","data":{"user":{"id":"u1"}}}`)
	if got, want := key(emptyID), "body:"+delivery(emptyID).BodySHA256; got != want {
		t.Fatalf("empty id: key %q, want %q", got, want)
	}
}

// TestNormalizePointsExact: points are parsed from the number's text, never
// through float64.
func TestNormalizePointsExact(t *testing.T) {
	p := newProvider(t, reward.Config{})
	for _, tc := range []struct{ amount, want string }{
		{"0.1", "0.1"},
		{"150", "150"},
		{"1e2", "100"},
		{"2.50", "2.5"},
		{`"42.125"`, "42.125"},
		{"0", "0"},
		{"9007199254740993", "9007199254740993"}, // 2^53+1: not a float64
		{"12345678901234567890.123456789", "12345678901234567890.123456789"}, // beyond float64's digits
	} {
		t.Run(tc.amount, func(t *testing.T) {
			body := []byte(`{"id":"we_1","type":"balance.credit_points_issued","data":{"user":{"id":"u1"},"transaction":{"id":"tx","amount":` + tc.amount + `}}}`)
			got := normalize(t, p, body).Fact.Data.(aggregate.PointsCredited).Points
			if got.String() != tc.want {
				t.Fatalf("Points = %s, want %s", got, tc.want)
			}
			data, err := json.Marshal(normalize(t, p, body).Fact.Data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(`"points":"`+tc.want+`"`)) {
				t.Fatalf("stored data %s does not hold points %q as a decimal string", data, tc.want)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	p := newProvider(t, reward.Config{})
	const user = `"user":{"id":"u1"}`
	for _, tc := range []struct {
		name      string
		body      string
		want      error
		eventType string
	}{
		{"unknown type", `{"id":"we_1","type":"balance.debit_points_issued","data":{` + user + `}}`, aggregate.ErrUnknownEvent, "balance.debit_points_issued"},
		{"wrong case", `{"id":"we_1","type":"Trigger_Event.Created","data":{` + user + `}}`, aggregate.ErrUnknownEvent, "Trigger_Event.Created"},
		{"no type", `{"id":"we_1","data":{` + user + `}}`, aggregate.ErrUnnormalizable, ""},
		{"type not a string", `{"id":"we_1","type":7,"data":{` + user + `}}`, aggregate.ErrUnnormalizable, ""},
		{"not an object", `["trigger_event.created"]`, aggregate.ErrUnnormalizable, ""},
		{"null", `null`, aggregate.ErrUnnormalizable, ""},
		{"not JSON", `{"type":"trigger_event.created",`, aggregate.ErrUnnormalizable, ""},
		{"id an object", `{"id":{"v":1},"type":"trigger_event.created","data":{` + user + `}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"id too long", `{"id":"` + strings.Repeat("w", 257) + `","type":"trigger_event.created","data":{` + user + `}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"no data", `{"id":"we_1","type":"trigger_event.created"}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"data not an object", `{"id":"we_1","type":"trigger_event.created","data":"u1"}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"no user", `{"id":"we_1","type":"trigger_event.created","data":{"value":1}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"no user id", `{"id":"we_1","type":"trigger_event.created","data":{"user":{}}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"empty user id", `{"id":"we_1","type":"trigger_event.created","data":{"user":{"id":""}}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"user id with a control character", `{"id":"we_1","type":"trigger_event.created","data":{"user":{"id":"u\n1"}}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"trigger value not a number", `{"id":"we_1","type":"trigger_event.created","data":{` + user + `,"value":"lots"}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"trigger id an object", `{"id":"we_1","type":"trigger_event.created","data":{` + user + `,"trigger":{"id":{}}}}`, aggregate.ErrUnnormalizable, "trigger_event.created"},
		{"credit without user", `{"id":"we_1","type":"balance.credit_points_issued","data":{"transaction":{"id":"tx","amount":1}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit without transaction", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit without transaction id", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"amount":1}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit without amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx"}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with null amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":null}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with garbled amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":"ten"}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with boolean amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":true}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with hex amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":"0x10"}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with a huge exponent", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":1e999999}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with a negative amount", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":{"id":"tx","amount":-5}}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
		{"credit with transaction not an object", `{"id":"we_1","type":"balance.credit_points_issued","data":{` + user + `,"transaction":"tx"}}`, aggregate.ErrUnnormalizable, "balance.credit_points_issued"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.Normalize(delivery([]byte(tc.body)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Normalize error = %v, want %v", err, tc.want)
			}
			if n.EventType != tc.eventType {
				t.Fatalf("EventType = %q, want %q (kept for the quarantine record)", n.EventType, tc.eventType)
			}
		})
	}
}

// TestNormalizeLenient: what is optional is omitted, not an error.
func TestNormalizeLenient(t *testing.T) {
	p := newProvider(t, reward.Config{})
	for _, tc := range []struct {
		name  string
		body  string
		check func(t *testing.T, n webhook.Normalized)
	}{
		{"bad time", `{"id":"we_1","type":"trigger_event.created","time":"yesterday","data":{"user":{"id":"u1"}}}`, func(t *testing.T, n webhook.Normalized) {
			if got := n.Fact.Data.(aggregate.EntityEventRecorded); got.OccurredAt != nil || got.Attributes != nil {
				t.Fatalf("OccurredAt, Attributes = %v, %v", got.OccurredAt, got.Attributes)
			}
		}},
		{"zoneless time", `{"id":"we_1","type":"trigger_event.created","time":"2024-12-14T15:29:18.821","data":{"user":{"id":"u1"}}}`, func(t *testing.T, n webhook.Normalized) {
			want := time.Date(2024, 12, 14, 15, 29, 18, 821000000, time.UTC)
			if got := n.Fact.Data.(aggregate.EntityEventRecorded).OccurredAt; got == nil || !got.Equal(want) {
				t.Fatalf("OccurredAt = %v, want %v", got, want)
			}
		}},
		{"numeric user id", `{"id":"we_1","type":"trigger_event.created","data":{"user":{"id":1234}}}`, func(t *testing.T, n webhook.Normalized) {
			if n.Fact.Stream != "user-reward.1234" {
				t.Fatalf("Stream = %q", n.Fact.Stream)
			}
		}},
		{"numeric envelope id", `{"id":77,"type":"trigger_event.created","data":{"user":{"id":"u1"}}}`, func(t *testing.T, n webhook.Normalized) {
			if n.Fact.DedupeKey != "envelope:77" || n.DeliveryID != "77" {
				t.Fatalf("DedupeKey, DeliveryID = %q, %q", n.Fact.DedupeKey, n.DeliveryID)
			}
		}},
		{"null value and trigger", `{"id":"we_1","type":"trigger_event.created","data":{"user":{"id":"u1"},"value":null,"trigger":null}}`, func(t *testing.T, n webhook.Normalized) {
			if got := n.Fact.Data.(aggregate.EntityEventRecorded).Attributes; got != nil {
				t.Fatalf("Attributes = %v", got)
			}
		}},
		{"unknown fields", `{"id":"we_1","type":"balance.credit_points_issued","extra":[1,2],"data":{"user":{"id":"u1","name":"x"},"transaction":{"id":"tx","amount":3,"note":"n"}}}`, func(t *testing.T, n webhook.Normalized) {
			if got := n.Fact.Data.(aggregate.PointsCredited).Points; !got.Equal(decimal.NewFromInt(3)) {
				t.Fatalf("Points = %s", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.Normalize(delivery([]byte(tc.body)))
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			tc.check(t, n)
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := newProvider(b, reward.Config{})
	d := delivery(loadExample(b, reward.EventCreditIssued))
	b.SetBytes(int64(len(d.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Normalize(d); err != nil {
			b.Fatal(err)
		}
	}
}
