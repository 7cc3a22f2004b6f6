package retm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
)

func normalizeWith(tb testing.TB, p *retm.Provider, d webhook.Delivery) webhook.Normalized {
	tb.Helper()
	return webhooktest.Normalize(tb, p, d)
}

func normalize(tb testing.TB, body []byte) webhook.Normalized {
	tb.Helper()
	return normalizeWith(tb, newProvider(tb, retm.Config{}), delivery(body))
}

// goldenProvider is the configuration the golden files are made with: a
// currency, and RETM's zoneless times read as UTC.
func goldenProvider(tb testing.TB) *retm.Provider {
	return newProvider(tb, retm.Config{Currency: "SAR"})
}

func TestNormalizeGolden(t *testing.T) {
	p := goldenProvider(t)
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			webhooktest.Golden(t, ex.Name, normalizeWith(t, p, delivery(ex.Body)))
		})
	}
}

func utc(s string) *time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return &t
}

// want is what TestNormalizeExamples expects of one example.
type want struct {
	eventType, stream, dedupe, slot string
	kind, id, status                string
	statusAt, occurredAt            *time.Time
	amount, currency                string
	attrs                           map[string]string
	reply                           bool
}

// TestNormalizeExamples states the mapping of each example directly, so
// that a wrong golden file cannot hide a wrong mapping.
func TestNormalizeExamples(t *testing.T) {
	p := goldenProvider(t)
	sha := func(name string) string { return webhooktest.BodySHA256(loadExample(t, name)) }
	endpointHash := webhooktest.BodySHA256([]byte("https://receiptd.example.com/webhooks/retm"))
	invoiceAttrs := func(reference, eventType, status string) map[string]string {
		return map[string]string{
			"business_reference": merchant, "reference": reference, "event_type": eventType,
			"order_reference": "1771", "branch_id": "01hq7k3b9tq2c8v4m6n1p0r5sd", "device_id": "01hq7k4e2wz7x3y5a8b6c1d9fg",
			"created_at": "2025-12-17 19:26:35", "subtotal_price": "65.217", "tax": "9.783", "status_code": status,
		}
	}
	customerAttrs := func(reference, email string) map[string]string {
		return map[string]string{
			"business_reference": merchant, "reference": reference, "name": "Sara Al-Harbi",
			"name_localized": "سارة الحربي", "phone": "0551234567", "email": email,
		}
	}
	for name, w := range map[string]want{
		"order.created": {
			eventType: retm.EventOrderCreated, stream: "order-retm.1532", dedupe: "order.created:1532:" + sha("order.created"), slot: "order.created",
			kind: "order", id: "1532", status: "Closed", statusAt: utc("2025-12-17 19:26:36"), occurredAt: utc("2025-12-17 19:26:36"),
			amount: "75", currency: "SAR", attrs: invoiceAttrs("3b0a6f2e-8d41-4c57-9f0e-2a7c5d9e1b84", "create.order", "1"),
		},
		"order.refunded": {
			eventType: retm.EventOrderRefunded, stream: "order-retm.1532", dedupe: "order.refunded:1532:" + sha("order.refunded"),
			kind: "order", id: "1532", status: "Refunded", statusAt: utc("2025-12-18 10:02:11"), occurredAt: utc("2025-12-18 10:02:11"),
			amount: "75", currency: "SAR", attrs: invoiceAttrs("9c1e4d7a-5b2f-4e83-a6d0-7f3b8c2e9a15", "refund.order", "4"),
		},
		"customer.created": {
			eventType: retm.EventCustomerCreated, stream: "customer-retm.4821", dedupe: "customer.created:4821:" + sha("customer.created"), slot: "customer.created",
			kind: "customer", id: "4821", status: "created", statusAt: utc("2025-12-17 19:20:04"), occurredAt: utc("2025-12-17 19:20:04"),
			attrs: customerAttrs("5e8f2a9c-1d47-4b6e-8a3f-c0d9e7b2f416", "sara@example.com"),
		},
		"customer.updated": {
			eventType: retm.EventCustomerUpdated, stream: "customer-retm.4821", dedupe: "customer.updated:4821:" + sha("customer.updated"),
			kind: "customer", id: "4821", status: "updated", statusAt: utc("2025-12-19 08:45:51"), occurredAt: utc("2025-12-19 08:45:51"),
			attrs: customerAttrs("a2d6c9e1-7f3b-4c58-9e0a-6b4d1f8c3e72", "sara.alharbi@example.com"),
		},
		"customer.deleted": {
			eventType: retm.EventCustomerDeleted, stream: "customer-retm.4821", dedupe: "customer.deleted:4821:" + sha("customer.deleted"), slot: "customer.deleted",
			kind: "customer", id: "4821", status: "deleted", statusAt: utc("2026-01-05 12:00:00"), occurredAt: utc("2026-01-05 12:00:00"),
			attrs: customerAttrs("e7b3f1a8-2c9d-4e65-b0f4-3a8c6d1e9b27", "sara.alharbi@example.com"),
		},
		"redeem_reward": {
			eventType: retm.EventRedeemReward, stream: "redemption-retm.RWD-7Q4K9M", dedupe: "redeem:RWD-7Q4K9M:" + sha("redeem_reward"), slot: "redeemed",
			kind: "redemption", id: "RWD-7Q4K9M", status: "redeemed", statusAt: utc("2025-12-17 19:31:02"), occurredAt: utc("2025-12-17 19:31:02"),
			attrs: map[string]string{"business_reference": merchant, "branch_id": "01hq7k3b9tq2c8v4m6n1p0r5sd", "date": "2025-12-17"},
		},
		"check_reward": {
			eventType: retm.EventCheckReward, stream: "question-retm." + sha("check_reward"), dedupe: "question:" + sha("check_reward"),
			kind: "question", id: sha("check_reward"), status: "rejected",
			attrs: map[string]string{"business_reference": merchant, "reward_code": "SUMMER25", "answer_status": "400", "answer": "no reward decision configured"},
			reply: true,
		},
		"promotional_coupon": {
			eventType: retm.EventCheckReward, stream: "question-retm." + sha("promotional_coupon"), dedupe: "question:" + sha("promotional_coupon"),
			kind: "question", id: sha("promotional_coupon"), status: "rejected",
			attrs: map[string]string{"business_reference": merchant, "reward_code": "WELCOME10", "answer_status": "400", "answer": "no reward decision configured"},
			reply: true,
		},
		"error_webhook": {
			eventType: retm.EventError, stream: "notice-retm." + endpointHash, dedupe: "notice:" + sha("error_webhook"),
			kind: "notice", id: endpointHash,
			attrs: map[string]string{"endpoint": "https://receiptd.example.com/webhooks/retm", "code": "500", "message": "Server Error"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			body := loadExample(t, name)
			n := normalizeWith(t, p, delivery(body))
			f := n.Fact
			if n.EventType != w.eventType || f.Stream != w.stream || f.Type != aggregate.TypeEntityEventRecorded ||
				f.DedupeKey != w.dedupe || f.SlotKey != w.slot || f.OnConflict != aggregate.Correct {
				t.Fatalf("event %q, fact {%s %s %s %q %v}; want event %q, {%s %s %s %q Correct}",
					n.EventType, f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict,
					w.eventType, w.stream, aggregate.TypeEntityEventRecorded, w.dedupe, w.slot)
			}
			rec, ok := f.Data.(aggregate.EntityEventRecorded)
			if !ok {
				t.Fatalf("Data is %T", f.Data)
			}
			if rec.Source != "retm" || rec.Kind != w.kind || rec.EntityID != w.id || rec.EventType != w.eventType ||
				rec.Status != w.status || rec.Currency != w.currency || rec.UserID != "" ||
				rec.BodySHA256 != webhooktest.BodySHA256(body) || !bytes.Equal(rec.Raw, body) {
				t.Fatalf("Data = %+v", rec)
			}
			if !sameTime(rec.StatusAt, w.statusAt) || !sameTime(rec.OccurredAt, w.occurredAt) {
				t.Fatalf("StatusAt, OccurredAt = %v, %v; want %v, %v", rec.StatusAt, rec.OccurredAt, w.statusAt, w.occurredAt)
			}
			if w.amount == "" && rec.Amount != nil || w.amount != "" && (rec.Amount == nil || !rec.Amount.Equal(decimal.RequireFromString(w.amount))) {
				t.Fatalf("Amount = %v, want %q", rec.Amount, w.amount)
			}
			if !maps.Equal(rec.Attributes, w.attrs) {
				t.Fatalf("Attributes = %v\nwant %v", rec.Attributes, w.attrs)
			}
			if (n.Reply != nil) != w.reply {
				t.Fatalf("Reply = %v, want one: %v", n.Reply, w.reply)
			}
			if n.Reply != nil {
				checkReply(t, n.Reply.Status, n.Reply.Body)
			}
		})
	}
}

// checkReply checks the answer to a Check Reward question: the 400 RETM
// documents, {"data": [], "message": "…", "errors": ["…"]}.
func checkReply(t *testing.T, status int, body []byte) {
	t.Helper()
	if status != http.StatusBadRequest {
		t.Fatalf("reply status %d, want 400", status)
	}
	var got struct {
		Data    *[]json.RawMessage `json:"data"`
		Message string             `json:"message"`
		Errors  []string           `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("reply body %s: %v", body, err)
	}
	if got.Data == nil || len(*got.Data) != 0 || !strings.Contains(got.Message, "no reward decision is configured") ||
		len(got.Errors) != 1 || got.Errors[0] != "no reward decision configured" {
		t.Fatalf("reply body %s", body)
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// TestNormalizeMerchantFromToken: a body without a business reference is
// attributed to the merchant of the token that authenticated it.
func TestNormalizeMerchantFromToken(t *testing.T) {
	p := newProvider(t, retm.Config{Tokens: []retm.Token{{Value: testToken}, {Value: merchantToken, Merchant: "brand-by-token"}}})
	body := loadExample(t, "error_webhook")
	if got := normalizeWith(t, p, deliveryBy(merchantToken, body)).Fact.Data.(aggregate.EntityEventRecorded).Attributes["business_reference"]; got != "brand-by-token" {
		t.Fatalf("business_reference = %q, want the token's merchant", got)
	}
	if _, ok := normalizeWith(t, p, deliveryBy(testToken, body)).Fact.Data.(aggregate.EntityEventRecorded).Attributes["business_reference"]; ok {
		t.Fatal("an unbound token's delivery without a business reference got one")
	}
	// The body's own reference is kept (Verify has checked it).
	coupon := loadExample(t, "promotional_coupon")
	if got := normalizeWith(t, p, deliveryBy(testToken, coupon)).Fact.Data.(aggregate.EntityEventRecorded).Attributes["business_reference"]; got != merchant {
		t.Fatalf("business_reference = %q, want the body's %q", got, merchant)
	}
}

// TestNormalizeDuplicates: RETM sends no event id, so the body identifies a
// delivery, and the entity and slot say what it corrects.
func TestNormalizeDuplicates(t *testing.T) {
	created := loadExample(t, "order.created")
	key := func(body []byte) aggregate.Fact { return normalize(t, body).Fact }
	if a, b := key(created), key(created); a.DedupeKey != b.DedupeKey || a.Stream != b.Stream {
		t.Fatal("an exact re-delivery has another dedupe key or stream")
	}
	changed := bytes.Replace(created, []byte(`"status": 1`), []byte(`"status": 5`), 1)
	a, b := key(created), key(changed)
	if a.DedupeKey == b.DedupeKey || a.Stream != b.Stream || a.SlotKey != b.SlotKey || a.SlotKey == "" {
		t.Fatalf("a changed order.created must be a correction: %+v vs %+v", a, b)
	}
	refund := loadExample(t, "order.refunded")
	partial := bytes.Replace(refund, []byte(`"total_price": "75.000"`), []byte(`"total_price": "30.000"`), 1)
	if r1, r2 := key(refund), key(partial); r1.SlotKey != "" || r2.SlotKey != "" || r1.DedupeKey == r2.DedupeKey {
		t.Fatalf("two refunds must stand alone: %+v vs %+v", r1, r2)
	}
	q := loadExample(t, "check_reward")
	if key(q).DedupeKey != key(q).DedupeKey || key(q).Stream != key(q).Stream {
		t.Fatal("a retried question is not a duplicate")
	}
	if key(q).Stream == key(loadExample(t, "promotional_coupon")).Stream {
		t.Fatal("two questions share a stream")
	}
	n1 := loadExample(t, "error_webhook")
	n2 := bytes.Replace(n1, []byte(`"code": 500`), []byte(`"code": 504`), 1)
	if key(n1).Stream != key(n2).Stream || key(n1).DedupeKey == key(n2).DedupeKey {
		t.Fatal("two failures of one endpoint must share a stream and not a dedupe key")
	}
}

func TestNormalizeInvoiceStatus(t *testing.T) {
	for _, tc := range []struct{ status, name, code string }{
		{`1`, "Closed", "1"}, {`2`, "Pending", "2"}, {`3`, "Active", "3"}, {`4`, "Refunded", "4"}, {`5`, "Void", "5"},
		{`"4"`, "Refunded", "4"},
		{`9`, "9", "9"},
		{`"Closed"`, "Closed", ""},
		{`null`, "", ""},
		{`true`, "", ""},
		{`{"id":1}`, "", ""},
	} {
		t.Run(tc.status, func(t *testing.T) {
			body := []byte(`{"event":"order.created","invoice_id":7,"status":` + tc.status + `,"timestamp":"2025-12-17 19:26:36"}`)
			rec := normalize(t, body).Fact.Data.(aggregate.EntityEventRecorded)
			if rec.Status != tc.name || rec.Attributes["status_code"] != tc.code {
				t.Fatalf("Status %q, status_code %q; want %q, %q", rec.Status, rec.Attributes["status_code"], tc.name, tc.code)
			}
			if (rec.StatusAt != nil) != (tc.name != "") {
				t.Fatalf("StatusAt = %v with status %q", rec.StatusAt, rec.Status)
			}
		})
	}
}

func TestNormalizeMoneyExact(t *testing.T) {
	for _, tc := range []struct{ total, want string }{
		{`"75.000"`, "75"},
		{`"0.001"`, "0.001"},
		{`"65.217"`, "65.217"},
		{`12.345`, "12.345"},
		{`"123456789012345678.999"`, "123456789012345678.999"},
	} {
		body := []byte(`{"event":"order.created","invoice_id":"i1","total_price":` + tc.total + `}`)
		rec := normalize(t, body).Fact.Data.(aggregate.EntityEventRecorded)
		if rec.Amount == nil || rec.Amount.String() != tc.want {
			t.Fatalf("total %s: Amount = %v, want %s", tc.total, rec.Amount, tc.want)
		}
		if rec.Currency != "" {
			t.Fatalf("Currency = %q with none configured", rec.Currency)
		}
	}
}

func TestNormalizeTimestamps(t *testing.T) {
	riyadh := time.FixedZone("AST", 3*3600)
	for _, tc := range []struct {
		name, ts string
		loc      *time.Location
		want     *time.Time
	}{
		{"space, UTC", "2025-12-17 19:26:35", nil, utc("2025-12-17 19:26:35")},
		{"T, UTC", "2025-12-17T19:26:35", nil, utc("2025-12-17 19:26:35")},
		{"fraction", "2025-12-17 19:26:35.250", nil, func() *time.Time { t := utc("2025-12-17 19:26:35").Add(250 * time.Millisecond); return &t }()},
		{"one-digit month and day", "2025-1-7 09:05:00", nil, utc("2025-01-07 09:05:00")},
		{"date only", "2025-12-17", nil, utc("2025-12-17 00:00:00")},
		{"RFC 3339 keeps its zone", "2025-12-17T22:26:35+03:00", nil, utc("2025-12-17 19:26:35")},
		{"configured location", "2025-12-17 22:26:35", riyadh, utc("2025-12-17 19:26:35")},
		{"DateTime.MinValue", "0001-01-01T00:00:00", nil, nil},
		{"placeholder", "datetime", nil, nil},
		{"empty", "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, retm.Config{Location: tc.loc})
			body := []byte(`{"event":"customer.updated","timestamp":"` + tc.ts + `","customer":{"id":1}}`)
			rec := normalizeWith(t, p, delivery(body)).Fact.Data.(aggregate.EntityEventRecorded)
			if !sameTime(rec.OccurredAt, tc.want) || !sameTime(rec.StatusAt, tc.want) {
				t.Fatalf("OccurredAt, StatusAt = %v, %v; want %v", rec.OccurredAt, rec.StatusAt, tc.want)
			}
		})
	}
	// order.created without a timestamp takes the invoice's creation; a
	// refund does not.
	created := normalize(t, []byte(`{"event":"order.created","invoice_id":1,"status":1,"created_at":"2025-12-17 19:26:35"}`)).Fact.Data.(aggregate.EntityEventRecorded)
	if !sameTime(created.OccurredAt, utc("2025-12-17 19:26:35")) || !sameTime(created.StatusAt, created.OccurredAt) {
		t.Fatalf("order.created: OccurredAt, StatusAt = %v, %v", created.OccurredAt, created.StatusAt)
	}
	refunded := normalize(t, []byte(`{"event":"order.refunded","invoice_id":1,"status":4,"created_at":"2025-12-17 19:26:35"}`)).Fact.Data.(aggregate.EntityEventRecorded)
	if refunded.OccurredAt != nil || refunded.StatusAt != nil {
		t.Fatalf("order.refunded: OccurredAt, StatusAt = %v, %v; want none", refunded.OccurredAt, refunded.StatusAt)
	}
	// Redeem Reward falls back to its date.
	redeemed := normalize(t, []byte(`{"reward_code":"R1","branch_id":"b","date":"2025-12-17"}`)).Fact.Data.(aggregate.EntityEventRecorded)
	if !sameTime(redeemed.StatusAt, utc("2025-12-17 00:00:00")) {
		t.Fatalf("redeem: StatusAt = %v", redeemed.StatusAt)
	}
}

// TestNormalizeUnpublishedOrderEvents: order.* events other than the
// invoice ones are kept on the order's stream with their raw body, or
// quarantined when they name no order.
func TestNormalizeUnpublishedOrderEvents(t *testing.T) {
	body := []byte(`{"event":"order.delivery_status_updated","business_refrence":"b1","invoice_id":1532,"timestamp":"2025-12-17 20:00:00","driver":{"name":"x"},"status":7}`)
	n := normalize(t, body)
	rec := n.Fact.Data.(aggregate.EntityEventRecorded)
	if n.EventType != "order.delivery_status_updated" || n.Fact.Stream != "order-retm.1532" || n.Fact.SlotKey != "" ||
		n.Fact.DedupeKey != "order.delivery_status_updated:1532:"+webhooktest.BodySHA256(body) {
		t.Fatalf("fact %+v", n.Fact)
	}
	if rec.Kind != "order" || rec.Status != "" || rec.Amount != nil || !sameTime(rec.OccurredAt, utc("2025-12-17 20:00:00")) ||
		!maps.Equal(rec.Attributes, map[string]string{"business_reference": "b1"}) || !bytes.Equal(rec.Raw, body) {
		t.Fatalf("Data = %+v", rec)
	}
	_, err := newProvider(t, retm.Config{}).Normalize(delivery([]byte(`{"event":"order.delivery_status_updated","order_id":9}`)))
	if !errors.Is(err, aggregate.ErrUnnormalizable) {
		t.Fatalf("order event without invoice_id: err = %v, want ErrUnnormalizable", err)
	}
}

func TestNormalizeErrors(t *testing.T) {
	p := newProvider(t, retm.Config{})
	for _, tc := range []struct {
		name      string
		body      string
		want      error
		eventType string
	}{
		{"unknown event", `{"event":"menu.updated","business_refrence":"b"}`, aggregate.ErrUnknownEvent, "menu.updated"},
		{"customer event of another verb", `{"event":"customer.merged","customer":{"id":1}}`, aggregate.ErrUnknownEvent, "customer.merged"},
		{"wrong case", `{"event":"Order.Created","invoice_id":1}`, aggregate.ErrUnknownEvent, "Order.Created"},
		{"unknown shape", `{"business_refrence":"b","timestamp":"2025-12-17 19:26:35"}`, aggregate.ErrUnknownEvent, ""},
		{"empty object", `{}`, aggregate.ErrUnknownEvent, ""},
		{"event not a string", `{"event":7,"invoice_id":1}`, aggregate.ErrUnnormalizable, ""},
		{"not an object", `["order.created"]`, aggregate.ErrUnnormalizable, ""},
		{"null", `null`, aggregate.ErrUnnormalizable, ""},
		{"not JSON", `{"event":"order.created",`, aggregate.ErrUnnormalizable, ""},
		{"invoice without id", `{"event":"order.created","total_price":"75.000"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"invoice with empty id", `{"event":"order.refunded","invoice_id":""}`, aggregate.ErrUnnormalizable, "order.refunded"},
		{"invoice id an object", `{"event":"order.created","invoice_id":{"id":1}}`, aggregate.ErrUnnormalizable, "order.created"},
		{"invoice id too long", `{"event":"order.created","invoice_id":"` + strings.Repeat("i", 257) + `"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"invoice id with a control character", `{"event":"order.created","invoice_id":"i\u00071"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"garbled total", `{"event":"order.created","invoice_id":1,"total_price":"75,000"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"currency in total", `{"event":"order.created","invoice_id":1,"total_price":"SAR 75.000"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"garbled subtotal", `{"event":"order.created","invoice_id":1,"subtotal_price":"n/a"}`, aggregate.ErrUnnormalizable, "order.created"},
		{"boolean tax", `{"event":"order.created","invoice_id":1,"tax":true}`, aggregate.ErrUnnormalizable, "order.created"},
		{"huge exponent", `{"event":"order.created","invoice_id":1,"total_price":1e999999}`, aggregate.ErrUnnormalizable, "order.created"},
		{"customer without customer", `{"event":"customer.created","reference":"r"}`, aggregate.ErrUnnormalizable, "customer.created"},
		{"customer not an object", `{"event":"customer.created","customer":4821}`, aggregate.ErrUnnormalizable, "customer.created"},
		{"customer without id", `{"event":"customer.updated","customer":{"name":"x"}}`, aggregate.ErrUnnormalizable, "customer.updated"},
		{"redeem without a code", `{"reward_code":"","branch_id":"b","date":"2025-12-17"}`, aggregate.ErrUnnormalizable, retm.EventRedeemReward},
		{"redeem with a code object", `{"reward_code":{"c":1},"branch_id":"b"}`, aggregate.ErrUnnormalizable, retm.EventRedeemReward},
		{"error webhook with endpoint not a string", `{"code":500,"endpoint":42,"message":"m"}`, aggregate.ErrUnnormalizable, retm.EventError},
		{"error webhook with empty endpoint", `{"code":500,"endpoint":"","message":"m"}`, aggregate.ErrUnnormalizable, retm.EventError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.Normalize(delivery([]byte(tc.body)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Normalize error = %v, want %v", err, tc.want)
			}
			if n.EventType != tc.eventType {
				t.Fatalf("EventType = %q, want %q (kept for the quarantine record)", n.EventType, tc.eventType)
			}
			if n.Reply != nil {
				t.Fatalf("a failed delivery has a Reply %+v", n.Reply)
			}
		})
	}
}

// TestNormalizeLenient: what is optional is omitted, not an error.
func TestNormalizeLenient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		check func(t *testing.T, n webhook.Normalized)
	}{
		{"the documented placeholders", `{"business_refrence":"","timestamp":"datetime","reference":"dolore et aliquip","event":"order.created","event_type":"labore culpa","invoice_id":"magna dolore","order_refrence":"","sale_id":""}`, func(t *testing.T, n webhook.Normalized) {
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			if n.Fact.Stream != "order-retm.magna dolore" || rec.OccurredAt != nil || rec.Amount != nil || rec.Status != "" {
				t.Fatalf("fact %+v", n.Fact)
			}
			if want := map[string]string{"reference": "dolore et aliquip", "event_type": "labore culpa"}; !maps.Equal(rec.Attributes, want) {
				t.Fatalf("Attributes = %v, want %v", rec.Attributes, want)
			}
		}},
		{"numbers for ids", `{"event":"order.created","invoice_id":153,"order_refrence":177,"branch_id":5}`, func(t *testing.T, n webhook.Normalized) {
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			if rec.EntityID != "153" || rec.Attributes["order_reference"] != "177" || rec.Attributes["branch_id"] != "5" {
				t.Fatalf("Data = %+v", rec)
			}
		}},
		{"customer with a garbled name", `{"event":"customer.updated","customer":{"id":1,"name":{"x":1}}}`, func(t *testing.T, n webhook.Normalized) {
			if rec := n.Fact.Data.(aggregate.EntityEventRecorded); rec.Attributes != nil || rec.EntityID != "1" {
				t.Fatalf("Data = %+v", rec)
			}
		}},
		{"unexpected types elsewhere", `{"event":"order.created","invoice_id":1,"customer":"walk-in","products":"none","note":{"x":1},"branch_id":{"id":"b"},"reference":["r"]}`, func(t *testing.T, n webhook.Normalized) {
			if rec := n.Fact.Data.(aggregate.EntityEventRecorded); rec.Attributes != nil {
				t.Fatalf("Attributes = %v", rec.Attributes)
			}
		}},
		{"long message bounded", `{"code":"E1","endpoint":"https://x","message":"` + strings.Repeat("é", 600) + `"}`, func(t *testing.T, n webhook.Normalized) {
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			if m := rec.Attributes["message"]; len(m) > 512 || !strings.HasPrefix(m, "éé") || rec.Attributes["code"] != "E1" {
				t.Fatalf("Attributes = %v", rec.Attributes)
			}
		}},
		{"event wins over shape", `{"event":"customer.created","customer":{"id":1},"reward_code":"R","endpoint":"e"}`, func(t *testing.T, n webhook.Normalized) {
			if n.Fact.Stream != "customer-retm.1" || n.Reply != nil {
				t.Fatalf("fact %+v, reply %v", n.Fact, n.Reply)
			}
		}},
		{"empty event falls back to the shape", `{"event":"","reward_code":"R"}`, func(t *testing.T, n webhook.Normalized) {
			if n.EventType != retm.EventCheckReward || n.Reply == nil {
				t.Fatalf("EventType %q, reply %v", n.EventType, n.Reply)
			}
		}},
		{"question with an empty code", `{"reward_code":"","business_refrence":"b"}`, func(t *testing.T, n webhook.Normalized) {
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			if _, ok := rec.Attributes["reward_code"]; ok || n.Reply == nil || rec.Kind != aggregate.CategoryQuestion {
				t.Fatalf("Data %+v, reply %v", rec, n.Reply)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, retm.Config{}).Normalize(delivery([]byte(tc.body)))
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			tc.check(t, n)
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := newProvider(b, retm.Config{Currency: "SAR"})
	d := delivery(loadExample(b, "order.created"))
	b.SetBytes(int64(len(d.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Normalize(d); err != nil {
			b.Fatal(err)
		}
	}
}
