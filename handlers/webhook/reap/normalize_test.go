package reap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

var receivedAt = time.Date(2025, 6, 3, 17, 45, 1, 0, time.UTC)

func delivery(body []byte) webhook.Delivery {
	return webhooktest.Delivery(body, receivedAt, webhook.Verification{Scheme: reap.SchemeCompactJSON, KeyID: "sha256:0d2501a7"})
}

// normalizer is a provider for Normalize only (its key is never used).
func normalizer(tb testing.TB) *reap.Provider {
	tb.Helper()
	primary, _, _ := testKeys(tb)
	return newProvider(tb, primary)
}

func normalize(tb testing.TB, body []byte) (webhook.Normalized, aggregate.EntityEventRecorded) {
	tb.Helper()
	n := webhooktest.Normalize(tb, normalizer(tb), delivery(body))
	rec, ok := n.Fact.Data.(aggregate.EntityEventRecorded)
	if !ok {
		tb.Fatalf("Data is %T", n.Fact.Data)
	}
	return n, rec
}

func TestNormalizeGolden(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			n, _ := normalize(t, ex.Body)
			webhooktest.Golden(t, ex.Name, n)
		})
	}
}

func ts(tb testing.TB, s string) *time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatal(err)
	}
	return &t
}

// TestNormalizeExamples states the mapping of each example directly, so
// that a wrong golden file cannot hide a wrong mapping.
func TestNormalizeExamples(t *testing.T) {
	const (
		account1 = "5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e"
		account2 = "a1b2c3d4-e5f6-4789-8abc-def012345678"
	)
	for _, tc := range []struct {
		name, entity, eventID, status, at string
		attrs                             map[string]string
	}{
		{"account_status_change.pending", account1, "0b6f1c52-3d7e-4a8b-9c1d-2e3f4a5b6c7d", "PENDING", "2025-05-31T12:00:00Z", map[string]string{
			"eventName": "ACCOUNT_PENDING", "message": "Proof of address is required before the account can be approved",
			"requirementId": "8d2e4f60-1a3b-4c5d-8e7f-90a1b2c3d4e5", "slug": "proof-of-address",
		}},
		{"account_status_change.approved", account1, "7f3c2a1e-4b5d-4c6e-9f80-1a2b3c4d5e6f", "APPROVED", "2025-05-31T12:05:00Z", map[string]string{
			"eventName": "ACCOUNT_APPROVED", "message": "Account verification approved",
		}},
		{"account_status_change.rejected-retry", account2, "c4d5e6f7-0819-4a2b-8c3d-4e5f60718293", "REJECTED", "2025-06-02T08:30:15.25Z", map[string]string{
			"eventName": "ACCOUNT_REJECTED", "message": "Identity verification rejected",
			"moderationComment": "Pièce d'identité expirée — please upload a valid ID/passport & retry",
			"reviewRejectType":  "RETRY", "rejectLabels": "DOCUMENT_EXPIRED, BAD_PROOF_OF_IDENTITY",
			"requirementId": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", "slug": "identity-document",
		}},
		{"account_status_change.rejected-final", account2, "e9f8a7b6-c5d4-4e3f-9a2b-1c0d9e8f7a6b", "REJECTED", "2025-06-03T17:45:00Z", map[string]string{
			"eventName": "ACCOUNT_REJECTED", "message": "Account verification rejected",
			"moderationComment": "The document appears to have been altered", "reviewRejectType": "FINAL", "rejectLabels": "FORGERY",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := loadExample(t, tc.name)
			n, rec := normalize(t, body)
			d := delivery(body)
			f := n.Fact
			if n.EventType != "account_status_change" || n.DeliveryID != tc.eventID || n.Reply != nil {
				t.Fatalf("EventType, DeliveryID, Reply = %q, %q, %v", n.EventType, n.DeliveryID, n.Reply)
			}
			if f.Stream != "account-reap."+tc.entity || f.Type != aggregate.TypeEntityEventRecorded ||
				f.DedupeKey != "event:"+tc.eventID || f.SlotKey != "" || f.OnConflict != aggregate.Correct {
				t.Fatalf("fact = {%s %s %s %q %v}", f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict)
			}
			at := ts(t, tc.at)
			if rec.Source != "reap" || rec.Kind != "account" || rec.EntityID != tc.entity ||
				rec.EventType != "account_status_change" || rec.Status != tc.status ||
				rec.StatusAt == nil || !rec.StatusAt.Equal(*at) || rec.StatusAt.Location() != time.UTC ||
				rec.OccurredAt == nil || !rec.OccurredAt.Equal(*at) ||
				rec.Amount != nil || rec.Currency != "" || rec.UserID != "" ||
				rec.BodySHA256 != d.BodySHA256 || !bytes.Equal(rec.Raw, body) {
				t.Fatalf("got %+v", rec)
			}
			if !maps.Equal(rec.Attributes, tc.attrs) {
				t.Fatalf("Attributes = %q\nwant %q", rec.Attributes, tc.attrs)
			}
		})
	}
}

// TestStatusAtOrdersExamples: of one account's two status changes, the
// later data.timestamp is the later StatusAt, whatever the order they are
// normalized in, since StatusAt never depends on when a delivery arrives.
func TestStatusAtOrdersExamples(t *testing.T) {
	p := normalizer(t)
	at := func(name string, received time.Time) time.Time {
		d := delivery(loadExample(t, name))
		d.ReceivedAt = received
		n, err := p.Normalize(d)
		if err != nil {
			t.Fatal(err)
		}
		return *n.Fact.Data.(aggregate.EntityEventRecorded).StatusAt
	}
	// The approval arrives first, the older pending status a day later.
	approved := at("account_status_change.approved", receivedAt)
	pending := at("account_status_change.pending", receivedAt.Add(24*time.Hour))
	if !approved.After(pending) {
		t.Fatalf("approved StatusAt %v is not after pending %v", approved, pending)
	}
}

// withData returns a delivery with data fields replaced (raw JSON values),
// others kept from the approved example; a nil value deletes a field.
func withData(tb testing.TB, top map[string]any, fields map[string]any) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(loadExample(tb, "account_status_change.approved"), &m); err != nil {
		tb.Fatal(err)
	}
	data := m["data"].(map[string]any)
	for k, v := range fields {
		if v == nil {
			delete(data, k)
		} else {
			data[k] = v
		}
	}
	for k, v := range top {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestNormalizeCases(t *testing.T) {
	p := normalizer(t)
	type want struct {
		err        error // nil: success
		eventType  string
		stream     string
		dedupe     string // "body" means "body:" + the SHA-256 of the body's compact JSON form
		status     string
		statusAt   string // RFC 3339, "" for none
		occurredAt string
		attrs      map[string]string // checked when not nil
	}
	const entity = "account-reap.5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e"
	const event = "event:7f3c2a1e-4b5d-4c6e-9f80-1a2b3c4d5e6f"
	const at = "2025-05-31T12:05:00Z"
	long := strings.Repeat("é", 600) // 1200 bytes
	for _, tc := range []struct {
		name string
		body []byte
		want want
	}{
		{"example", withData(t, nil, nil), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at}},
		{"numeric entityId", withData(t, nil, map[string]any{"entityId": json.Number("42")}), want{stream: "account-reap.42", dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at}},
		{"entityId with dots", withData(t, nil, map[string]any{"entityId": "acct.1.2"}), want{stream: "account-reap.acct.1.2", dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at}},
		{"no eventId", withData(t, nil, map[string]any{"eventId": nil}), want{stream: entity, dedupe: "body", status: "APPROVED", statusAt: at, occurredAt: at}},
		{"eventId not an id", withData(t, nil, map[string]any{"eventId": map[string]any{"id": 1}}), want{stream: entity, dedupe: "body", status: "APPROVED", statusAt: at, occurredAt: at}},
		{"empty eventId", withData(t, nil, map[string]any{"eventId": ""}), want{stream: entity, dedupe: "body", status: "APPROVED", statusAt: at, occurredAt: at}},
		{"numeric eventId", withData(t, nil, map[string]any{"eventId": json.Number("9001")}), want{stream: entity, dedupe: "event:9001", status: "APPROVED", statusAt: at, occurredAt: at}},
		// Numbers by value, as JavaScript reads them: a replay re-spelling a
		// number under a compact-JSON signature names the same entity and
		// event.
		{"numeric ids spelled otherwise", withData(t, nil, map[string]any{"entityId": json.Number("4.2e1"), "eventId": json.Number("9001.0")}), want{stream: "account-reap.42", dedupe: "event:9001", status: "APPROVED", statusAt: at, occurredAt: at}},
		{"numeric id past 2^53", withData(t, nil, map[string]any{"entityId": json.Number("12345678901234567890")}), want{stream: "account-reap.12345678901234567000", dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at}},
		{"numeric id out of range", withData(t, nil, map[string]any{"entityId": json.Number("1e400")}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"no status", withData(t, nil, map[string]any{"status": nil}), want{stream: entity, dedupe: event, occurredAt: at}},
		{"status kept as sent", withData(t, nil, map[string]any{"status": "ON_HOLD"}), want{stream: entity, dedupe: event, status: "ON_HOLD", statusAt: at, occurredAt: at}},

		// Timestamps.
		{"no timestamp", withData(t, nil, map[string]any{"timestamp": nil}), want{stream: entity, dedupe: event, status: "APPROVED"}},
		{"null timestamp", []byte(`{"eventType":"account_status_change","data":{"entityId":"e","status":"APPROVED","timestamp":null}}`), want{stream: "account-reap.e", dedupe: "body", status: "APPROVED"}},
		{"empty timestamp", withData(t, nil, map[string]any{"timestamp": ""}), want{stream: entity, dedupe: event, status: "APPROVED"}},
		{"timestamp without fraction", withData(t, nil, map[string]any{"timestamp": "2024-03-20T10:00:00Z"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00Z", occurredAt: "2024-03-20T10:00:00Z"}},
		{"timestamp with offset", withData(t, nil, map[string]any{"timestamp": "2024-03-20T12:00:00.5+02:00"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00.5Z", occurredAt: "2024-03-20T10:00:00.5Z"}},
		{"timestamp with ±hhmm offset", withData(t, nil, map[string]any{"timestamp": "2024-03-20T10:00:00.000+0000"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00Z", occurredAt: "2024-03-20T10:00:00Z"}},
		{"zoneless timestamp", withData(t, nil, map[string]any{"timestamp": "2024-03-20T10:00:00.1234567"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00.1234567Z", occurredAt: "2024-03-20T10:00:00.1234567Z"}},
		{"space-separated timestamp", withData(t, nil, map[string]any{"timestamp": "2024-03-20 10:00:00"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00Z", occurredAt: "2024-03-20T10:00:00Z"}},
		{"Unix milliseconds", withData(t, nil, map[string]any{"timestamp": json.Number("1710928800123")}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00.123Z", occurredAt: "2024-03-20T10:00:00.123Z"}},
		{"Unix seconds", withData(t, nil, map[string]any{"timestamp": json.Number("1710928800")}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00Z", occurredAt: "2024-03-20T10:00:00Z"}},
		{"Unix milliseconds in exponent form", withData(t, nil, map[string]any{"timestamp": json.Number("1.710928800123e12")}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00.123Z", occurredAt: "2024-03-20T10:00:00.123Z"}},
		{"Unix milliseconds as a string", withData(t, nil, map[string]any{"timestamp": "1710928800123"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: "2024-03-20T10:00:00.123Z", occurredAt: "2024-03-20T10:00:00.123Z"}},
		{"unreadable timestamp", withData(t, nil, map[string]any{"timestamp": "yesterday"}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"date only", withData(t, nil, map[string]any{"timestamp": "2024-03-20"}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"negative Unix time", withData(t, nil, map[string]any{"timestamp": json.Number("-1")}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"fractional Unix time", withData(t, nil, map[string]any{"timestamp": json.Number("1710928800.5")}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"Unix time past year 9999", withData(t, nil, map[string]any{"timestamp": json.Number("999999999999999")}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"timestamp object", withData(t, nil, map[string]any{"timestamp": map[string]any{}}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},

		// Attributes.
		{"rejectLabels as a string", withData(t, nil, map[string]any{"rejectLabels": "BLURRY"}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at, attrs: map[string]string{
			"eventName": "ACCOUNT_APPROVED", "message": "Account verification approved", "rejectLabels": "BLURRY"}}},
		{"rejectLabels mixed", withData(t, nil, map[string]any{"rejectLabels": []any{"A", json.Number("7"), map[string]any{}, "", nil, true, "B"}}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at, attrs: map[string]string{
			"eventName": "ACCOUNT_APPROVED", "message": "Account verification approved", "rejectLabels": "A, 7, true, B"}}},
		{"empty and non-scalar attributes", withData(t, map[string]any{"eventName": ""}, map[string]any{"message": map[string]any{"x": 1}, "slug": "", "requirementId": json.Number("12"), "rejectLabels": []any{}}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at, attrs: map[string]string{
			"requirementId": "12"}}},
		{"no attributes", []byte(`{"eventType":"account_status_change","data":{"entityId":"e","status":"PENDING"}}`), want{stream: "account-reap.e", dedupe: "body", status: "PENDING", attrs: map[string]string{}}},
		{"long attribute cut on a rune boundary", withData(t, nil, map[string]any{"message": long}), want{stream: entity, dedupe: event, status: "APPROVED", statusAt: at, occurredAt: at, attrs: map[string]string{
			"eventName": "ACCOUNT_APPROVED", "message": long[:1024]}}},

		// Read as JSON.parse reads it.
		{"repeated key: the last wins", []byte(`{"eventType":"account_status_change","data":{"entityId":"e","status":"PENDING","status":"APPROVED"}}`), want{stream: "account-reap.e", dedupe: "body", status: "APPROVED"}},
		{"keys are case-sensitive", []byte(`{"eventType":"account_status_change","data":{"entityId":"e","Status":"REJECTED","EntityID":"x"}}`), want{stream: "account-reap.e", dedupe: "body"}},
		{"EventType is not eventType", []byte(`{"EventType":"account_status_change","data":{"entityId":"e"}}`), want{err: aggregate.ErrUnnormalizable}},

		// What cannot be normalized.
		{"unknown event type", []byte(`{"eventType":"feature_access_change","data":{"entityId":"e"}}`), want{err: aggregate.ErrUnknownEvent, eventType: "feature_access_change"}},
		{"event type in another case", []byte(`{"eventType":"ACCOUNT_STATUS_CHANGE","data":{"entityId":"e"}}`), want{err: aggregate.ErrUnknownEvent, eventType: "ACCOUNT_STATUS_CHANGE"}},
		{"subscription request from the seed", []byte(`{"webhookUrl":"https://your-domain.com/webhooks/reap","notificationChannel":"WEBHOOK","notificationTypes":["account_status_change"]}`), want{err: aggregate.ErrUnnormalizable}},
		{"no eventType", withData(t, map[string]any{"eventType": nil}, nil), want{err: aggregate.ErrUnnormalizable}},
		{"eventType not a string", withData(t, map[string]any{"eventType": json.Number("1")}, nil), want{err: aggregate.ErrUnnormalizable}},
		{"no data", []byte(`{"eventType":"account_status_change"}`), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"data null", []byte(`{"eventType":"account_status_change","data":null}`), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"data an array", []byte(`{"eventType":"account_status_change","data":[{"entityId":"e"}]}`), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"no entityId", withData(t, nil, map[string]any{"entityId": nil}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"empty entityId", withData(t, nil, map[string]any{"entityId": ""}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"entityId too long", withData(t, nil, map[string]any{"entityId": strings.Repeat("x", 257)}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"entityId with a control character", withData(t, nil, map[string]any{"entityId": "a\nb"}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"entityId an object", withData(t, nil, map[string]any{"entityId": map[string]any{}}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"status not a string", withData(t, nil, map[string]any{"status": json.Number("1")}), want{err: aggregate.ErrUnnormalizable, eventType: "account_status_change"}},
		{"an array", []byte(`[]`), want{err: aggregate.ErrUnnormalizable}},
		{"not JSON", []byte(`{"eventType":`), want{err: aggregate.ErrUnnormalizable}},
		{"empty body", []byte{}, want{err: aggregate.ErrUnnormalizable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := delivery(tc.body)
			n, err := p.Normalize(d)
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) {
					t.Fatalf("Normalize error = %v, want %v", err, tc.want.err)
				}
				if n.EventType != tc.want.eventType {
					t.Fatalf("EventType = %q, want %q", n.EventType, tc.want.eventType)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			dedupe := tc.want.dedupe
			if dedupe == "body" {
				dedupe = "body:" + valueSHA256(t, tc.body)
			}
			if n.Fact.Stream != tc.want.stream || n.Fact.DedupeKey != dedupe || rec.Status != tc.want.status {
				t.Fatalf("stream, dedupe, status = %q, %q, %q; want %q, %q, %q", n.Fact.Stream, n.Fact.DedupeKey, rec.Status, tc.want.stream, dedupe, tc.want.status)
			}
			checkTime(t, "StatusAt", rec.StatusAt, tc.want.statusAt)
			checkTime(t, "OccurredAt", rec.OccurredAt, tc.want.occurredAt)
			if tc.want.attrs != nil && !maps.Equal(rec.Attributes, tc.want.attrs) {
				t.Fatalf("Attributes = %q, want %q", rec.Attributes, tc.want.attrs)
			}
			if len(tc.want.attrs) == 0 && tc.want.attrs != nil && rec.Attributes != nil {
				t.Fatalf("Attributes = %#v, want nil", rec.Attributes)
			}
		})
	}
}

// valueSHA256 is the hex SHA-256 of body's compact JSON form.
func valueSHA256(tb testing.TB, body []byte) string {
	tb.Helper()
	c, err := reap.CompactJSON(body)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:])
}

// TestDedupeWithoutEventID: without an eventId, two bodies with one JSON
// value (re-indented, numbers re-spelled) are one delivery; another value
// is another.
func TestDedupeWithoutEventID(t *testing.T) {
	p := normalizer(t)
	key := func(body string) string {
		t.Helper()
		n, err := p.Normalize(delivery([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		return n.Fact.DedupeKey
	}
	a := key(`{"eventType":"account_status_change","data":{"entityId":"e","status":"APPROVED","timestamp":1710928800123}}`)
	b := key("{\n  \"eventType\": \"account_status_change\",\n  \"data\": {\"entityId\": \"e\", \"status\": \"APPROVED\", \"timestamp\": 1.710928800123e12}\n}\n")
	c := key(`{"eventType":"account_status_change","data":{"entityId":"e","status":"REJECTED","timestamp":1710928800123}}`)
	if !strings.HasPrefix(a, "body:") || a != b || a == c {
		t.Fatalf("dedupe keys %q, %q, %q: want the first two equal and the third different", a, b, c)
	}
	// A body with no compact form (not UTF-8) falls back to its own hash.
	body := []byte("{\"eventType\":\"account_status_change\",\"data\":{\"entityId\":\"e\",\"message\":\"\xff\"}}")
	n, err := p.Normalize(delivery(body))
	if err != nil {
		t.Fatal(err)
	}
	if want := "body:" + delivery(body).BodySHA256; n.Fact.DedupeKey != want {
		t.Fatalf("dedupe key %q, want %q", n.Fact.DedupeKey, want)
	}
}

func checkTime(t *testing.T, name string, got *time.Time, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Fatalf("%s = %v, want none", name, got)
		}
		return
	}
	if got == nil || !got.Equal(*ts(t, want)) || got.Location() != time.UTC {
		t.Fatalf("%s = %v, want %s (UTC)", name, got, want)
	}
}

func TestNormalizeComputesBodyHash(t *testing.T) {
	body := loadExample(t, "account_status_change.pending")
	d := delivery(body)
	want := d.BodySHA256
	d.BodySHA256 = ""
	n, err := normalizer(t).Normalize(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Fact.Data.(aggregate.EntityEventRecorded).BodySHA256; got != want {
		t.Fatalf("BodySHA256 = %q, want %q", got, want)
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := normalizer(b)
	d := delivery(loadExample(b, "account_status_change.rejected-retry"))
	b.SetBytes(int64(len(d.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Normalize(d); err != nil {
			b.Fatal(err)
		}
	}
}
