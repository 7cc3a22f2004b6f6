package reewild_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

var receivedAt = time.Date(2025, 11, 21, 15, 6, 0, 0, time.UTC)

func delivery(body []byte) webhook.Delivery {
	return webhooktest.Delivery(body, receivedAt, webhook.Verification{Scheme: reewild.Scheme, KeyID: webhook.KeyID(testSecret)})
}

func normalize(tb testing.TB, body []byte) webhook.Normalized {
	tb.Helper()
	return webhooktest.Normalize(tb, newProvider(tb, testSecret), delivery(body))
}

func TestNormalizeGolden(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			webhooktest.Golden(t, ex.Name, normalize(t, ex.Body))
		})
	}
}

// TestNormalizeExamples states the mapping of each seed example directly,
// so that a wrong golden file cannot hide a wrong mapping.
func TestNormalizeExamples(t *testing.T) {
	dec := decimal.RequireFromString
	ts := func(s string) *time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return &tm
	}

	t.Run("user.enrolled", func(t *testing.T) {
		body := loadExample(t, "user.enrolled")
		n := normalize(t, body)
		d := delivery(body)
		want := aggregate.UserEnrolled{
			Source: "reewild", UserID: "00B4N5", Email: "user@example.com",
			EnrolledAt: ts("2025-11-21T15:00:45.1070976Z"), BodySHA256: d.BodySHA256, Raw: body,
		}
		got, ok := n.Fact.Data.(aggregate.UserEnrolled)
		if !ok {
			t.Fatalf("Data is %T", n.Fact.Data)
		}
		if got.Source != want.Source || got.UserID != want.UserID || got.Email != want.Email ||
			!got.EnrolledAt.Equal(*want.EnrolledAt) || got.BodySHA256 != want.BodySHA256 || !bytes.Equal(got.Raw, body) {
			t.Fatalf("Data = %+v, want %+v", got, want)
		}
		checkFact(t, n, "user-reewild.00B4N5", aggregate.TypeUserEnrolled, "user.enrolled:00B4N5:"+d.BodySHA256, "enrolled")
	})

	receipt := func(t *testing.T, name string) (aggregate.StageRecorded, webhook.Normalized, webhook.Delivery) {
		t.Helper()
		body := loadExample(t, name)
		n := normalize(t, body)
		rec, ok := n.Fact.Data.(aggregate.StageRecorded)
		if !ok {
			t.Fatalf("Data is %T", n.Fact.Data)
		}
		d := delivery(body)
		if rec.Source != "reewild" || rec.BodySHA256 != d.BodySHA256 || !bytes.Equal(rec.Raw, body) {
			t.Fatalf("Source, BodySHA256 or Raw wrong: %+v", rec)
		}
		return rec, n, d
	}
	amount := func(t *testing.T, got *decimal.Decimal, want string) {
		t.Helper()
		if got == nil || !got.Equal(dec(want)) {
			t.Fatalf("Amount = %v, want %s", got, want)
		}
	}

	t.Run("receipt.uploaded", func(t *testing.T) {
		rec, n, d := receipt(t, "receipt.uploaded")
		const id = "133f1eb5-2c91-4a95-ad87-2ae6de6e8df0"
		checkFact(t, n, "receipt-reewild."+id, aggregate.TypeReceiptStageRecorded, "receipt.uploaded:"+id+":"+d.BodySHA256, "stage:UPLOADED")
		if rec.ReceiptID != id || rec.UserID != "027KO2" || rec.Stage != aggregate.StageUploaded || rec.Merchant != "Tesco" || rec.Currency != "" {
			t.Fatalf("got %+v", rec)
		}
		amount(t, rec.Amount, "6.0")
		if rec.OccurredAt == nil || !rec.OccurredAt.Equal(*ts("2025-11-21T15:05:02.5569459Z")) {
			t.Fatalf("OccurredAt = %v", rec.OccurredAt)
		}
	})
	for _, tc := range []struct {
		name     string
		stage    aggregate.Stage
		merchant string
		currency string
		amount   string
	}{
		{"receipt.extracted", aggregate.StageExtracted, "TESCO", "GBP", "6.33"},
		{"receipt.enriched", aggregate.StageEnriched, "TESCO", "GBP", "6.33"},
		{"receipt.validated", aggregate.StageValidated, "", "GBP", ""},
		{"receipt.scored", aggregate.StageScored, "", "GBP", "6.33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, n, d := receipt(t, tc.name)
			const id = "fb2cdc63-6d13-4176-89ae-7a424b69d7b5"
			checkFact(t, n, "receipt-reewild."+id, aggregate.TypeReceiptStageRecorded, tc.name+":"+id+":"+d.BodySHA256, "stage:"+string(tc.stage))
			if rec.ReceiptID != id || rec.UserID != "027KO2" || rec.Stage != tc.stage || rec.Merchant != tc.merchant || rec.Currency != tc.currency {
				t.Fatalf("got %+v", rec)
			}
			if tc.amount == "" {
				if rec.Amount != nil {
					t.Fatalf("Amount = %v, want none", rec.Amount)
				}
			} else {
				amount(t, rec.Amount, tc.amount)
			}
			if rec.OccurredAt != nil || rec.Award != nil || rec.Failure != nil {
				t.Fatalf("unexpected OccurredAt, Award or Failure: %+v", rec)
			}
		})
	}
	t.Run("rewards.awarded", func(t *testing.T) {
		rec, n, d := receipt(t, "rewards.awarded")
		const id = "fb2cdc63-6d13-4176-89ae-7a424b69d7b5"
		checkFact(t, n, "receipt-reewild."+id, aggregate.TypeReceiptStageRecorded, "rewards.awarded:"+id+":"+d.BodySHA256, "stage:AWARDED")
		if rec.ReceiptID != id || rec.UserID != "027KO2" || rec.Stage != aggregate.StageAwarded || rec.Merchant != "TESCO" || rec.Currency != "" {
			t.Fatalf("got %+v", rec)
		}
		amount(t, rec.Amount, "6.33")
		a := rec.Award
		if a == nil || a.TransactionID != "080c2949-b9fc-493d-85b5-906330bb3d7b" ||
			!a.Points.Equal(dec("74.28")) || !a.BonusPoints.IsZero() || !a.HealthPoints.Equal(dec("37.14")) ||
			!a.CO2e.Equal(dec("2.55")) || a.GreenProducts != 4 {
			t.Fatalf("Award = %+v", a)
		}
		s := a.Snapshot
		if s == nil || !s.AvailablePoints.Equal(dec("1656.54")) || !s.LifetimePoints.Equal(dec("1656.54")) || s.NumTransactions != 38 {
			t.Fatalf("Snapshot = %+v", s)
		}
	})
	t.Run("receipt.failed", func(t *testing.T) {
		rec, n, d := receipt(t, "receipt.failed")
		const id = "491d44e2-a2b7-4107-87db-4d5b566e6d2b"
		checkFact(t, n, "receipt-reewild."+id, aggregate.TypeReceiptStageRecorded, "receipt.failed:"+id+":"+d.BodySHA256, "stage:FAILED")
		if rec.UserID != "07BVG7" || rec.Stage != aggregate.StageFailed {
			t.Fatalf("got %+v", rec)
		}
		want := aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "Receipt validation failed"}
		if rec.Failure == nil || *rec.Failure != want {
			t.Fatalf("Failure = %+v, want %+v", rec.Failure, want)
		}
	})
}

func checkFact(t *testing.T, n webhook.Normalized, stream, typ, dedupe, slot string) {
	t.Helper()
	f := n.Fact
	if f.Stream != stream || f.Type != typ || f.DedupeKey != dedupe || f.SlotKey != slot || f.OnConflict != aggregate.Correct {
		t.Fatalf("fact = {%s %s %s %s %v}, want {%s %s %s %s Correct}", f.Stream, f.Type, f.DedupeKey, f.SlotKey, f.OnConflict, stream, typ, dedupe, slot)
	}
}

// withEventType returns body with its eventType replaced.
func withEventType(tb testing.TB, body []byte, eventType string) []byte {
	tb.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatal(err)
	}
	old, _ := json.Marshal(strings.Trim(string(m["eventType"]), `"`))
	repl, _ := json.Marshal(eventType)
	out := bytes.Replace(body, old, repl, 1)
	if bytes.Equal(out, body) && string(old) != string(repl) {
		tb.Fatalf("eventType not replaced in %s", body)
	}
	return out
}

func TestNormalizeAliases(t *testing.T) {
	for _, tc := range []struct{ alias, example string }{
		{"user_enrolled", "user.enrolled"},
		{"receipt_uploaded", "receipt.uploaded"},
		{"receipt_extracted", "receipt.extracted"},
		{"receipt_enriched", "receipt.enriched"},
		{"receipt_validated", "receipt.validated"},
		{"receipt_scored", "receipt.scored"},
		{"rewards_awarded", "rewards.awarded"},
		{"receipt_completed", "rewards.awarded"},
		{"receipt.completed", "rewards.awarded"},
		{"receipt_failed", "receipt.failed"},
	} {
		t.Run(tc.alias, func(t *testing.T) {
			canonical := loadExample(t, tc.example)
			aliased := withEventType(t, canonical, tc.alias)
			want, got := normalize(t, canonical), normalize(t, aliased)
			if got.EventType != tc.alias {
				t.Fatalf("EventType = %q, want the alias as sent %q", got.EventType, tc.alias)
			}
			sha := delivery(aliased).BodySHA256
			if got.Fact.Stream != want.Fact.Stream || got.Fact.Type != want.Fact.Type || got.Fact.SlotKey != want.Fact.SlotKey {
				t.Fatalf("alias fact %+v differs from canonical %+v", got.Fact, want.Fact)
			}
			_, _, id, err := aggregate.ParseStreamID(got.Fact.Stream)
			if err != nil {
				t.Fatal(err)
			}
			if wantKey := tc.example + ":" + id + ":" + sha; got.Fact.DedupeKey != wantKey {
				t.Fatalf("DedupeKey = %q, want %q (canonical type)", got.Fact.DedupeKey, wantKey)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		want      error
		eventType string
	}{
		{"unknown event type", `{"eventType":"receipt.teleported","data":{"receiptID":"r1"}}`, aggregate.ErrUnknownEvent, "receipt.teleported"},
		{"wrong case", `{"eventType":"Receipt.Uploaded","data":{"receiptID":"r1"}}`, aggregate.ErrUnknownEvent, "Receipt.Uploaded"},
		{"no event type", `{"data":{"receiptID":"r1"}}`, aggregate.ErrUnnormalizable, ""},
		{"event type not a string", `{"eventType":7,"data":{"receiptID":"r1"}}`, aggregate.ErrUnnormalizable, ""},
		{"not an object", `["receipt.uploaded"]`, aggregate.ErrUnnormalizable, ""},
		{"null", `null`, aggregate.ErrUnnormalizable, ""},
		{"no data", `{"eventType":"receipt.uploaded"}`, aggregate.ErrUnnormalizable, "receipt.uploaded"},
		{"data not an object", `{"eventType":"receipt.uploaded","data":"r1"}`, aggregate.ErrUnnormalizable, "receipt.uploaded"},
		{"missing receiptID", `{"eventType":"receipt.extracted","data":{"userID":"u1","subTotal":6.33}}`, aggregate.ErrUnnormalizable, "receipt.extracted"},
		{"empty receiptID", `{"eventType":"receipt.extracted","data":{"receiptID":""}}`, aggregate.ErrUnnormalizable, "receipt.extracted"},
		{"receiptID an object", `{"eventType":"receipt.extracted","data":{"receiptID":{"id":"r1"}}}`, aggregate.ErrUnnormalizable, "receipt.extracted"},
		{"receiptID with a control character", `{"eventType":"receipt.extracted","data":{"receiptID":"r\n1"}}`, aggregate.ErrUnnormalizable, "receipt.extracted"},
		{"receiptID too long", `{"eventType":"receipt.extracted","data":{"receiptID":"` + strings.Repeat("r", 257) + `"}}`, aggregate.ErrUnnormalizable, "receipt.extracted"},
		{"missing userID", `{"eventType":"user.enrolled","data":{"email":"a@b.c"}}`, aggregate.ErrUnnormalizable, "user.enrolled"},
		{"awarded without transaction", `{"eventType":"rewards.awarded","data":{"user":{"id":"u1"}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded without receipt id", `{"eventType":"rewards.awarded","data":{"transaction":{"totalPoints":1}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded without totalPoints", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1"}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with garbled totalPoints", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":"lots"}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with boolean CO2e", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":1,"totalCO2e":true}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with fractional green products", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":1,"totalGreenProducts":1.5}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with a huge exponent", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":1e999999}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with a garbled snapshot", `{"eventType":"rewards.awarded","data":{"user":{"numOfTransactions":"many"},"transaction":{"externalTransactionID":"r1","totalPoints":1}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"awarded with user not an object", `{"eventType":"rewards.awarded","data":{"user":"u1","transaction":{"externalTransactionID":"r1","totalPoints":1}}}`, aggregate.ErrUnnormalizable, "rewards.awarded"},
		{"uploaded with garbled amount", `{"eventType":"receipt.uploaded","data":{"receiptID":"r1","amount":"six"}}`, aggregate.ErrUnnormalizable, "receipt.uploaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery([]byte(tc.body)))
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
	for _, tc := range []struct {
		name  string
		body  string
		check func(t *testing.T, rec aggregate.StageRecorded)
	}{
		{"bad uploadedAt", `{"eventType":"receipt.uploaded","data":{"receiptID":"r1","uploadedAt":"yesterday"}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.OccurredAt != nil {
				t.Fatalf("OccurredAt = %v", rec.OccurredAt)
			}
		}},
		{"uploadedAt a number", `{"eventType":"receipt.uploaded","data":{"receiptID":"r1","uploadedAt":1700000000}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.OccurredAt != nil {
				t.Fatalf("OccurredAt = %v", rec.OccurredAt)
			}
		}},
		{"merchant a number", `{"eventType":"receipt.extracted","data":{"receiptID":"r1","merchantName":12,"brand":"TESCO"}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.Merchant != "TESCO" {
				t.Fatalf("Merchant = %q", rec.Merchant)
			}
		}},
		{"null and empty amounts", `{"eventType":"receipt.extracted","data":{"receiptID":"r1","amount":null,"subTotal":""}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.Amount != nil {
				t.Fatalf("Amount = %v", rec.Amount)
			}
		}},
		{"amount as a string", `{"eventType":"receipt.extracted","data":{"receiptID":"r1","subTotal":"6.33"}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.Amount == nil || rec.Amount.String() != "6.33" {
				t.Fatalf("Amount = %v", rec.Amount)
			}
		}},
		{"numeric ids", `{"eventType":"receipt.failed","data":{"receiptID":12345,"userID":77,"failureStage":"x","failureStageName":"FAILED_UPLOAD"}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.ReceiptID != "12345" || rec.UserID != "77" {
				t.Fatalf("ReceiptID, UserID = %q, %q", rec.ReceiptID, rec.UserID)
			}
			if rec.Failure == nil || *rec.Failure != (aggregate.Failure{Name: "FAILED_UPLOAD"}) {
				t.Fatalf("Failure = %+v", rec.Failure)
			}
		}},
		{"escaped strings", `{"eventType":"receipt.extracted","data":{"receiptID":"r\u00e91","merchantName":"Caf\u00e9 \"Bleu\""}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.ReceiptID != "ré1" || rec.Merchant != `Café "Bleu"` {
				t.Fatalf("ReceiptID, Merchant = %q, %q", rec.ReceiptID, rec.Merchant)
			}
		}},
		{"awarded receipt id from data.receiptID", `{"eventType":"receipt_completed","data":{"receiptID":"r9","transaction":{"totalPoints":1}}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			if rec.ReceiptID != "r9" || rec.Award == nil || rec.Award.Snapshot != nil {
				t.Fatalf("got %+v", rec)
			}
		}},
		{"exact decimals", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":12345678901234567890.123456789,"totalCO2e":0.1e-3,"totalGreenProducts":4.0}}}`, func(t *testing.T, rec aggregate.StageRecorded) {
			a := rec.Award
			if a.Points.String() != "12345678901234567890.123456789" || a.CO2e.String() != "0.0001" || a.GreenProducts != 4 {
				t.Fatalf("Award = %+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := normalize(t, []byte(tc.body))
			rec, ok := n.Fact.Data.(aggregate.StageRecorded)
			if !ok {
				t.Fatalf("Data is %T", n.Fact.Data)
			}
			tc.check(t, rec)
		})
	}
}

func TestNormalizeTimestamps(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // RFC 3339 in UTC; "" means omitted
	}{
		{"2025-11-21T15:00:45.1070976", "2025-11-21T15:00:45.1070976Z"},
		{"2025-11-21T15:05:02.5569459Z", "2025-11-21T15:05:02.5569459Z"},
		{"2025-11-07T19:12:34.567Z", "2025-11-07T19:12:34.567Z"},
		{"2025-10-08T00:00:00+00:00", "2025-10-08T00:00:00Z"},
		{"2025-10-08T02:00:00+02:00", "2025-10-08T00:00:00Z"},
		{"2025-10-08T11:47:00", "2025-10-08T11:47:00Z"},
		{"2025-12-17 19:26:35", "2025-12-17T19:26:35Z"},
		{"", ""},
		{"11:47:00", ""},
		{"2025-13-01T00:00:00", ""},
		{"2025-11-21T15:00:45.12345678901", "2025-11-21T15:00:45.123456789Z"}, // truncated to nanoseconds
	} {
		t.Run(tc.in, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{
				"eventType": "user.enrolled",
				"data":      map[string]any{"userID": "u1", "createdAt": tc.in},
			})
			u := normalize(t, body).Fact.Data.(aggregate.UserEnrolled)
			if tc.want == "" {
				if u.EnrolledAt != nil {
					t.Fatalf("EnrolledAt = %v, want omitted", u.EnrolledAt)
				}
				return
			}
			if u.EnrolledAt == nil || u.EnrolledAt.Format(time.RFC3339Nano) != tc.want || u.EnrolledAt.Location() != time.UTC {
				t.Fatalf("EnrolledAt = %v, want %s", u.EnrolledAt, tc.want)
			}
		})
	}
}

func TestNormalizeComputesMissingHash(t *testing.T) {
	body := loadExample(t, "receipt.failed")
	n, err := newProvider(t, testSecret).Normalize(webhook.Delivery{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if want := delivery(body).BodySHA256; !strings.HasSuffix(n.Fact.DedupeKey, ":"+want) {
		t.Fatalf("DedupeKey %q does not end in the body hash %s", n.Fact.DedupeKey, want)
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, name := range []string{"rewards.awarded", "receipt.extracted"} {
		b.Run(name, func(b *testing.B) {
			p := newProvider(b, testSecret)
			d := delivery(loadExample(b, name))
			b.SetBytes(int64(len(d.Body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Normalize(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
