package reusely_test

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

func delivery(tb testing.TB, body []byte) webhook.Delivery {
	return webhooktest.Delivery(body, unix(tb, createdTS), webhook.Verification{Scheme: reusely.SchemeHMACSHA256, KeyID: webhook.KeyID(testSecret)})
}

func normalize(tb testing.TB, body []byte) webhook.Normalized {
	tb.Helper()
	return webhooktest.Normalize(tb, newProvider(tb, testSecret), delivery(tb, body))
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
	wantAttributes := map[string]string{
		"status_id":               "1",
		"payout_total":            "$960.00",
		"payout_currency_symbol":  "$",
		"payout_method":           "PayPal",
		"expedited_payout_fee":    "0",
		"selling_type":            "Instant Offer",
		"buyback_source":          "Widget",
		"offer_created_by":        "System",
		"number_of_buyback_items": "1",
		"location_id":             "1",
		"location_name":           "Mail-In Location",
		"courier":                 "Easypost(USPS)",
		"tracking_number":         "9405500208303110161449",
		"created_at":              "2025-06-09T04:02:10.000000Z",
	}
	for _, tc := range []struct {
		name, objectID, ts, status, statusID string
	}{
		{reusely.EventOfferCreated, createdObjectID, createdTS, "Active Leads", "1"},
		{reusely.EventOfferStatusUpdated, updatedObjectID, updatedTS, "In-Transit", "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := loadExample(t, tc.name)
			d := delivery(t, body)
			n := normalize(t, body)
			slot := "signed:" + tc.objectID + ":" + tc.ts
			f := n.Fact
			if n.EventType != tc.name || n.DeliveryID != "" || n.Reply != nil {
				t.Fatalf("Normalized = %+v", n)
			}
			if f.Stream != "offer-reusely."+exampleBoxID || f.Type != aggregate.TypeEntityEventRecorded ||
				f.SlotKey != slot || f.DedupeKey != slot+":"+d.BodySHA256 || f.OnConflict != aggregate.Reject {
				t.Fatalf("fact = {%s %s %s %s %v}", f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict)
			}
			rec, ok := f.Data.(aggregate.EntityEventRecorded)
			if !ok {
				t.Fatalf("Data is %T", f.Data)
			}
			at := unix(t, tc.ts)
			if rec.Source != "reusely" || rec.Kind != aggregate.CategoryOffer || rec.EntityID != exampleBoxID ||
				rec.EventType != tc.name || rec.Status != tc.status || rec.UserID != "" ||
				rec.BodySHA256 != d.BodySHA256 || !bytes.Equal(rec.Raw, body) {
				t.Fatalf("Data = %+v", rec)
			}
			if rec.StatusAt == nil || !rec.StatusAt.Equal(at) || rec.OccurredAt == nil || !rec.OccurredAt.Equal(at) {
				t.Fatalf("StatusAt, OccurredAt = %v, %v, want %v", rec.StatusAt, rec.OccurredAt, at)
			}
			if rec.Amount == nil || !rec.Amount.Equal(decimal.RequireFromString("960")) || rec.Amount.String() != "960" || rec.Currency != "$" {
				t.Fatalf("Amount, Currency = %v, %q", rec.Amount, rec.Currency)
			}
			want := maps.Clone(wantAttributes)
			want["object_id"], want["status_id"] = tc.objectID, tc.statusID
			if !maps.Equal(rec.Attributes, want) {
				t.Fatalf("Attributes = %v\nwant %v", rec.Attributes, want)
			}
			for _, v := range rec.Attributes {
				if strings.Contains(v, "@") || strings.Contains(v, "John") {
					t.Fatalf("personal data %q copied into the attributes", v)
				}
			}
		})
	}
}

func TestNormalizeExactAmount(t *testing.T) {
	body := loadExample(t, "offer.created")
	for _, tc := range []struct{ in, want string }{
		{`"payout_amount": "960.00"`, "960"},
		{`"payout_amount": "0.10"`, "0.1"},
		{`"payout_amount": 1234567890123456789.01`, "1234567890123456789.01"},
		{`"payout_amount": null`, ""},
		{`"payout_amount": ""`, ""},
	} {
		b := webhooktest.Replace(t, body, `"payout_amount": "960.00"`, tc.in)
		rec := normalize(t, b).Fact.Data.(aggregate.EntityEventRecorded)
		switch {
		case tc.want == "" && rec.Amount != nil:
			t.Errorf("%s: Amount = %v, want none", tc.in, rec.Amount)
		case tc.want != "" && (rec.Amount == nil || rec.Amount.String() != tc.want):
			t.Errorf("%s: Amount = %v, want %s", tc.in, rec.Amount, tc.want)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	body := string(loadExample(t, "offer.created"))
	edit := func(old, new string) string {
		if strings.Count(body, old) != 1 {
			t.Fatalf("%q not in the example once", old)
		}
		return strings.Replace(body, old, new, 1)
	}
	for _, tc := range []struct {
		name      string
		body      string
		want      error
		eventType string
	}{
		{"unknown event type", edit(`"offer.created"`, `"offer.deleted"`), aggregate.ErrUnknownEvent, "offer.deleted"},
		{"wrong case", edit(`"offer.created"`, `"Offer.Created"`), aggregate.ErrUnknownEvent, "Offer.Created"},
		{"no type", edit(`,
  "type": "offer.created"`, ``), aggregate.ErrUnnormalizable, ""},
		{"type not a string", edit(`"type": "offer.created"`, `"type": 1`), aggregate.ErrUnnormalizable, ""},
		{"not an object", `["offer.created"]`, aggregate.ErrUnnormalizable, ""},
		{"null", `null`, aggregate.ErrUnnormalizable, ""},
		{"not JSON", `type=offer.created`, aggregate.ErrUnnormalizable, ""},
		{"no data", `{"object_id":1,"timestamp":"1749441740","type":"offer.created"}`, aggregate.ErrUnnormalizable, "offer.created"},
		{"data not an object", `{"object_id":1,"timestamp":"1749441740","type":"offer.created","data":"STAG03U2O"}`, aggregate.ErrUnnormalizable, "offer.created"},
		{"no box_id", edit(`"box_id": "STAG03U2O",`, ``), aggregate.ErrUnnormalizable, "offer.created"},
		{"empty box_id", edit(`"STAG03U2O"`, `""`), aggregate.ErrUnnormalizable, "offer.created"},
		{"box_id an object", edit(`"STAG03U2O"`, `{"id":"STAG03U2O"}`), aggregate.ErrUnnormalizable, "offer.created"},
		{"box_id with a control character", edit(`"STAG03U2O"`, `"STAG\n03U2O"`), aggregate.ErrUnnormalizable, "offer.created"},
		{"box_id too long", edit(`"STAG03U2O"`, `"`+strings.Repeat("S", 257)+`"`), aggregate.ErrUnnormalizable, "offer.created"},
		{"no object_id", edit(`"object_id": 93092,`, ``), aggregate.ErrUnnormalizable, "offer.created"},
		{"garbled timestamp", edit(`"1749441740"`, `"yesterday"`), aggregate.ErrUnnormalizable, "offer.created"},
		{"garbled amount", edit(`"payout_amount": "960.00"`, `"payout_amount": "$960.00"`), aggregate.ErrUnnormalizable, "offer.created"},
		{"amount a boolean", edit(`"payout_amount": "960.00"`, `"payout_amount": true`), aggregate.ErrUnnormalizable, "offer.created"},
		{"amount with a huge exponent", edit(`"payout_amount": "960.00"`, `"payout_amount": 1e999999`), aggregate.ErrUnnormalizable, "offer.created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery(t, []byte(tc.body)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Normalize error = %v, want %v", err, tc.want)
			}
			if n.EventType != tc.eventType {
				t.Fatalf("EventType = %q, want %q (kept for the quarantine record)", n.EventType, tc.eventType)
			}
		})
	}
}

// TestNormalizeLenient: what is descriptive is omitted when it has an
// unexpected shape, never an error.
func TestNormalizeLenient(t *testing.T) {
	body := loadExample(t, "offer.created")
	for _, tc := range []struct {
		name  string
		old   string
		new   string
		check func(t *testing.T, rec aggregate.EntityEventRecorded)
	}{
		{"no status", `"status": "Active Leads",`, ``, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if rec.Status != "" || rec.StatusAt != nil || rec.OccurredAt == nil {
				t.Fatalf("Status, StatusAt, OccurredAt = %q, %v, %v", rec.Status, rec.StatusAt, rec.OccurredAt)
			}
		}},
		{"status a number", `"status": "Active Leads"`, `"status": 1`, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if rec.Status != "" || rec.StatusAt != nil {
				t.Fatalf("Status, StatusAt = %q, %v", rec.Status, rec.StatusAt)
			}
		}},
		{"numeric box_id", `"STAG03U2O"`, `12345`, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if rec.EntityID != "12345" {
				t.Fatalf("EntityID = %q", rec.EntityID)
			}
		}},
		{"escaped strings", `"Active Leads"`, `"Being Inspected \u2013 \"2\""`, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if rec.Status != `Being Inspected – "2"` {
				t.Fatalf("Status = %q", rec.Status)
			}
		}},
		{"attribute an object", `"courier": "Easypost(USPS)"`, `"courier": {"name": "USPS"}`, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if _, ok := rec.Attributes["courier"]; ok {
				t.Fatalf("Attributes = %v", rec.Attributes)
			}
		}},
		{"no currency symbol", `"payout_currency_symbol": "$",`, ``, func(t *testing.T, rec aggregate.EntityEventRecorded) {
			if rec.Currency != "" || rec.Amount == nil {
				t.Fatalf("Currency, Amount = %q, %v", rec.Currency, rec.Amount)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := normalize(t, webhooktest.Replace(t, body, tc.old, tc.new)).Fact.Data.(aggregate.EntityEventRecorded)
			tc.check(t, rec)
		})
	}
}

func TestNormalizeComputesMissingHash(t *testing.T) {
	body := loadExample(t, "offer.created")
	n, err := newProvider(t, testSecret).Normalize(webhook.Delivery{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if want := delivery(t, body).BodySHA256; !strings.HasSuffix(n.Fact.DedupeKey, ":"+want) {
		t.Fatalf("DedupeKey %q does not end in the body hash %s", n.Fact.DedupeKey, want)
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := newProvider(b, testSecret)
	d := delivery(b, loadExample(b, "offer.created"))
	b.SetBytes(int64(len(d.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Normalize(d); err != nil {
			b.Fatal(err)
		}
	}
}
