package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/bench/benchdata"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// TestDeliveriesVerifyAndNormalize: every kind of delivery the bench sends
// is valid JSON, verifies with the bench's signature, and normalizes to a
// fact of the receipt (or user) it was generated for — so the bench
// measures accepted deliveries, not quarantine.
func TestDeliveriesVerifyAndNormalize(t *testing.T) {
	u := benchdata.Universe{Seed: 7, Users: 50, Receipts: 500}
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte(benchSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	sign := newSigner([]byte(benchSecret))
	types := map[string]int{}
	var buf []byte
	for k := range u.Size() {
		buf = u.Delivery(buf[:0], k)
		if !json.Valid(buf) {
			t.Fatalf("delivery %d is not JSON: %s", k, buf)
		}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", nil)
		r.Header.Set(reewild.SignatureHeader, sign.sign(buf))
		v, err := p.Verify(r, buf, time.Now())
		if err != nil {
			t.Fatalf("delivery %d: %v", k, err)
		}
		n, err := p.Normalize(webhook.Delivery{Body: buf, Verification: v})
		if err != nil {
			t.Fatalf("delivery %d does not normalize: %v\n%s", k, err, buf)
		}
		types[n.EventType]++
		if k < u.Users {
			if want := aggregate.StreamID(aggregate.CategoryUser, "reewild", u.UserID(k)); n.Fact.Stream != want {
				t.Fatalf("delivery %d: stream %s, want %s", k, n.Fact.Stream, want)
			}
			continue
		}
		r2 := (k - u.Users) / benchdata.EventsPerReceipt
		if want := aggregate.StreamID(aggregate.CategoryReceipt, "reewild", string(u.ReceiptID(r2))); n.Fact.Stream != want {
			t.Fatalf("delivery %d: stream %s, want %s", k, n.Fact.Stream, want)
		}
		rec := n.Fact.Data.(aggregate.StageRecorded)
		if rec.UserID != u.UserID(u.ReceiptUser(r2)) {
			t.Fatalf("delivery %d: user %q, want %q", k, rec.UserID, u.UserID(u.ReceiptUser(r2)))
		}
		if rec.Stage == aggregate.StageAwarded && (rec.Award == nil || rec.Award.Points.IsZero()) {
			t.Fatalf("delivery %d: award without points: %s", k, buf)
		}
	}
	for _, typ := range []string{"user.enrolled", "receipt.uploaded", "receipt.extracted", "receipt.enriched", "receipt.validated", "receipt.scored", "rewards.awarded", "receipt.failed"} {
		if types[typ] == 0 {
			t.Errorf("no %s delivery generated", typ)
		}
	}
}

// TestSequence: every delivery is handed out once, plus the configured
// share of re-deliveries of earlier ones.
func TestSequence(t *testing.T) {
	u := benchdata.Universe{Seed: 1, Users: 100, Receipts: 2000}
	s := newSequence(u, 0.2, 3)
	seen := make([]int, u.Size())
	dups := 0
	for {
		k, dup, ok := s.take()
		if !ok {
			break
		}
		if dup {
			dups++
			if seen[k] == 0 {
				t.Fatalf("re-delivery of %d before its first delivery", k)
			}
		}
		seen[k]++
	}
	for k, n := range seen {
		if n == 0 {
			t.Fatalf("delivery %d never handed out", k)
		}
	}
	distinct, total, _ := s.counts()
	if distinct != u.Size() || total != u.Size()+dups {
		t.Fatalf("counts %d/%d, want %d/%d", distinct, total, u.Size(), u.Size()+dups)
	}
	if share := float64(dups) / float64(total); share < 0.18 || share > 0.22 {
		t.Fatalf("re-delivery share %.3f, want about 0.2", share)
	}
}

func TestSizes(t *testing.T) {
	s := sizeStats(benchdata.Universe{Seed: 1, Users: 1000, Receipts: 10000}, 5000)
	t.Logf("%+v", s)
	if s.mean < 900 || s.max > 4000 || s.perEventType["rewards.awarded"] < 1500 {
		t.Fatalf("bodies are not Reewild-sized: %+v", s)
	}
	if !strings.Contains(eventTypeOf([]byte(`{"eventType":"rewards.awarded","data":{}}`)), "rewards.awarded") {
		t.Fatal("eventTypeOf")
	}
}
