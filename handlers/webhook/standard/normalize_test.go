package standard_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

// delivery is body as Verify passed it, with webhook-id msgID.
func delivery(body []byte) webhook.Delivery {
	return webhooktest.Delivery(body, now, webhook.Verification{Scheme: standard.Scheme, KeyID: webhook.KeyID(testKey), DeliveryID: msgID})
}

func normalizeWith(tb testing.TB, p *standard.Provider, body []byte) webhook.Normalized {
	tb.Helper()
	return webhooktest.Normalize(tb, p, delivery(body))
}

func normalize(tb testing.TB, body []byte) webhook.Normalized {
	tb.Helper()
	return normalizeWith(tb, newProvider(tb, testSecret), body)
}

func record(tb testing.TB, n webhook.Normalized) aggregate.EntityEventRecorded {
	tb.Helper()
	rec, ok := n.Fact.Data.(aggregate.EntityEventRecorded)
	if !ok {
		tb.Fatalf("Data is %T", n.Fact.Data)
	}
	return rec
}

func TestNormalizeGolden(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			webhooktest.Golden(t, ex.Name, normalize(t, ex.Body))
		})
	}
}

// TestNormalizeExamples states the mapping of each example directly, so
// that a wrong golden file cannot hide a wrong mapping.
func TestNormalizeExamples(t *testing.T) {
	for _, tc := range []struct {
		name, status, at string
	}{
		{"order.created", "pending", "2025-11-21T15:04:12.512394Z"},
		{"order.paid", "paid", "2025-11-21T15:04:19.870112Z"},
		{"order.refunded", "partially_refunded", "2025-11-23T09:41:02.004Z"},
		{"order.note_added", "", "2025-11-22T10:15:30Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := loadExample(t, tc.name)
			d := delivery(body)
			n := normalize(t, body)
			f := n.Fact
			if n.EventType != tc.name || n.DeliveryID != "" || n.Reply != nil {
				t.Fatalf("Normalized = %+v", n)
			}
			slot := "webhook-id:" + msgID
			if f.Stream != "order-storefront."+orderID || f.Type != aggregate.TypeEntityEventRecorded ||
				f.SlotKey != slot || f.DedupeKey != slot+":"+d.BodySHA256 || f.OnConflict != aggregate.Correct {
				t.Fatalf("fact = {%s %s %s %s %v}", f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict)
			}
			rec := record(t, n)
			at, err := time.Parse(time.RFC3339Nano, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Source != testSource || rec.Kind != "order" || rec.EntityID != orderID || rec.EventType != tc.name ||
				rec.Status != tc.status || rec.BodySHA256 != d.BodySHA256 || !bytes.Equal(rec.Raw, body) ||
				rec.Amount != nil || rec.Currency != "" || rec.UserID != "" || rec.Attributes != nil {
				t.Fatalf("Data = %+v", rec)
			}
			if rec.OccurredAt == nil || !rec.OccurredAt.Equal(at) || rec.OccurredAt.Location() != time.UTC {
				t.Fatalf("OccurredAt = %v, want %v", rec.OccurredAt, at)
			}
			if (tc.status == "") != (rec.StatusAt == nil) || (rec.StatusAt != nil && !rec.StatusAt.Equal(at)) {
				t.Fatalf("StatusAt = %v, want %v with status %q", rec.StatusAt, at, tc.status)
			}
		})
	}
}

func TestNormalizeDefaults(t *testing.T) {
	p := newProviderWith(t, standard.Config{Source: "acme", Secrets: [][]byte{testSecret}})
	n := normalizeWith(t, p, loadExample(t, "order.paid"))
	if n.Fact.Stream != "entity-acme."+orderID || record(t, n).Kind != standard.DefaultCategory {
		t.Fatalf("stream %q, kind %q", n.Fact.Stream, record(t, n).Kind)
	}
}

func TestNormalizeFields(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            standard.Config
		body           string
		entity, status string
	}{
		{"squashed payload", standard.Config{EntityField: "id", StatusField: "state"},
			`{"type":"contact.updated","id":"c1","state":"active","data":{"id":"ignored"}}`, "c1", "active"},
		{"nested object", standard.Config{EntityField: "data.object.id", StatusField: "data.object.status"},
			`{"type":"invoice.paid","data":{"object":{"id":"in_1","status":"paid"}}}`, "in_1", "paid"},
		{"numeric id", standard.Config{},
			`{"type":"order.created","data":{"id":12345,"status":"new"}}`, "12345", "new"},
		{"status not a string", standard.Config{},
			`{"type":"order.created","data":{"id":"o1","status":{"code":2}}}`, "o1", ""},
		{"empty status", standard.Config{},
			`{"type":"order.created","data":{"id":"o1","status":""}}`, "o1", ""},
		{"status path through a non-object", standard.Config{StatusField: "data.status.name"},
			`{"type":"order.created","data":{"id":"o1","status":"new"}}`, "o1", ""},
		{"keys match exactly", standard.Config{},
			`{"type":"order.created","data":{"id":"o1","Status":"new"}}`, "o1", ""},
		{"last of a repeated key", standard.Config{},
			`{"type":"order.created","data":{"id":"o1","id":"o2"}}`, "o2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Source, cfg.Secrets = "acme", [][]byte{testSecret}
			rec := record(t, normalizeWith(t, newProviderWith(t, cfg), []byte(tc.body)))
			if rec.EntityID != tc.entity || rec.Status != tc.status {
				t.Fatalf("EntityID, Status = %q, %q, want %q, %q", rec.EntityID, rec.Status, tc.entity, tc.status)
			}
			if rec.OccurredAt != nil || rec.StatusAt != nil {
				t.Fatalf("OccurredAt, StatusAt = %v, %v without a payload timestamp", rec.OccurredAt, rec.StatusAt)
			}
		})
	}
}

func TestNormalizeTimestamps(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // RFC 3339 in UTC; "" means omitted
	}{
		{`"2022-11-03T20:26:10.344522Z"`, "2022-11-03T20:26:10.344522Z"},
		{`"2022-11-03T22:26:10+02:00"`, "2022-11-03T20:26:10Z"},
		{`"2022-11-03 20:26:10"`, ""},
		{`1667507170`, ""},
		{`null`, ""},
		{`""`, ""},
	} {
		body := `{"type":"order.created","timestamp":` + tc.raw + `,"data":{"id":"o1","status":"new"}}`
		rec := record(t, normalize(t, []byte(body)))
		switch {
		case tc.want == "" && (rec.OccurredAt != nil || rec.StatusAt != nil):
			t.Errorf("%s: OccurredAt, StatusAt = %v, %v, want omitted", tc.raw, rec.OccurredAt, rec.StatusAt)
		case tc.want != "" && (rec.OccurredAt == nil || rec.OccurredAt.Format(time.RFC3339Nano) != tc.want || rec.StatusAt != rec.OccurredAt):
			t.Errorf("%s: OccurredAt, StatusAt = %v, %v, want %s", tc.raw, rec.OccurredAt, rec.StatusAt, tc.want)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		eventType string
	}{
		{"no type", `{"data":{"id":"o1"}}`, ""},
		{"type not a string", `{"type":7,"data":{"id":"o1"}}`, ""},
		{"empty type", `{"type":"","data":{"id":"o1"}}`, ""},
		{"type too long", `{"type":"` + strings.Repeat("t", 129) + `","data":{"id":"o1"}}`, ""},
		{"type with a control character", `{"type":"order.\u0000created","data":{"id":"o1"}}`, ""},
		{"not an object", `["order.created"]`, ""},
		{"null", `null`, ""},
		{"not JSON", `type=order.created`, ""},
		{"no data", `{"type":"order.created"}`, "order.created"},
		{"data not an object", `{"type":"order.created","data":"o1"}`, "order.created"},
		{"no id", `{"type":"order.created","data":{"status":"new"}}`, "order.created"},
		{"null id", `{"type":"order.created","data":{"id":null}}`, "order.created"},
		{"empty id", `{"type":"order.created","data":{"id":""}}`, "order.created"},
		{"id an object", `{"type":"order.created","data":{"id":{"value":"o1"}}}`, "order.created"},
		{"id a boolean", `{"type":"order.created","data":{"id":true}}`, "order.created"},
		{"id with a control character", `{"type":"order.created","data":{"id":"o\n1"}}`, "order.created"},
		{"id too long", `{"type":"order.created","data":{"id":"` + strings.Repeat("o", 257) + `"}}`, "order.created"},
		{"id in another case", `{"type":"order.created","data":{"ID":"o1"}}`, "order.created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery([]byte(tc.body)))
			if !errors.Is(err, aggregate.ErrUnnormalizable) {
				t.Fatalf("Normalize error = %v, want ErrUnnormalizable", err)
			}
			if n.EventType != tc.eventType {
				t.Fatalf("EventType = %q, want %q (kept for the quarantine record)", n.EventType, tc.eventType)
			}
		})
	}
}

// TestNormalizeWithoutDeliveryID: Normalize called without Verify's
// delivery id still has a dedupe key (the body hash) and no slot.
func TestNormalizeWithoutDeliveryID(t *testing.T) {
	body := loadExample(t, "order.paid")
	n, err := newProvider(t, testSecret).Normalize(webhook.Delivery{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + delivery(body).BodySHA256; n.Fact.DedupeKey != want || n.Fact.SlotKey != "" {
		t.Fatalf("DedupeKey, SlotKey = %q, %q, want %q and none", n.Fact.DedupeKey, n.Fact.SlotKey, want)
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := newProvider(b, testSecret)
	d := delivery(loadExample(b, "order.created"))
	b.SetBytes(int64(len(d.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Normalize(d); err != nil {
			b.Fatal(err)
		}
	}
}
