package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

func ledgerOf(t *testing.T, db *projections.DB, source, user string) []projections.LedgerEntry {
	t.Helper()
	var all []projections.LedgerEntry
	token := ""
	for {
		page, next, err := db.Ledger(context.Background(), source, user, 2, token)
		if err != nil {
			t.Fatalf("Ledger(%s/%s): %v", source, user, err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
}

type wantEntry struct {
	kind, receipt, points, total string
}

func checkLedger(t *testing.T, got []projections.LedgerEntry, want []wantEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ledger has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind || g.ReceiptID != w.receipt || g.Points.String() != w.points || g.Total.String() != w.total {
			t.Errorf("entry %d = %s %s %s total %s, want %s %s %s total %s", i, g.Kind, g.ReceiptID, g.Points, g.Total, w.kind, w.receipt, w.points, w.total)
		}
		if i > 0 && g.Position <= got[i-1].Position {
			t.Errorf("entry %d at position %d is not after %d", i, g.Position, got[i-1].Position)
		}
	}
}

// TestLedgerRunningTotals: every change to a user's derived points is an
// entry, and the running total of the last one is the balance's.
func TestLedgerRunningTotals(t *testing.T) {
	db := openDB(t)
	var l log
	t1 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	award := func(receipt, user, points, hash string, at time.Time) {
		l.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{
			Source: "reewild", ReceiptID: receipt, UserID: user, Stage: aggregate.StageAwarded, BodySHA256: hash, OccurredAt: &at,
			Award: &aggregate.Award{TransactionID: "tx-" + hash, Points: decimal.RequireFromString(points)},
		})
	}
	l.stage("r1", "u1", aggregate.StageUploaded, "a") // no change to points
	award("r1", "u1", "10.5", "b", t1)
	award("r1", "u1", "12", "c", t1.Add(time.Hour)) // a correction chosen over b: +1.5
	award("r1", "u1", "9", "d", t1.Add(-time.Hour)) // a correction not chosen: nothing
	l.credit("reward", "reewild", "u1", "cr1", "0.25")
	award("r2", "u2", "7.77", "e", t1)
	award("r2", "u1", "8", "f", t1.Add(time.Hour)) // r2 now belongs to u1
	l.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{Source: "reewild", ReceiptID: "r3", UserID: "u1", Stage: aggregate.StageFailed, BodySHA256: "g"})
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	u1 := ledgerOf(t, db, "reewild", "u1")
	checkLedger(t, u1, []wantEntry{
		{projections.LedgerAward, "r1", "10.5", "10.5"},
		{projections.LedgerAwardCorrected, "r1", "1.5", "12"},
		{projections.LedgerCredit, "", "0.25", "12.25"},
		{projections.LedgerAward, "r2", "8", "20.25"},
	})
	if b := mustBalance(t, db, "u1"); !b.DerivedPoints.Equal(u1[len(u1)-1].Total) {
		t.Errorf("derived %s, ledger ends at %s", b.DerivedPoints, u1[len(u1)-1].Total)
	}
	if u1[2].Source != "reward" || u1[2].TransactionID != "cr1" || u1[1].TransactionID != "tx-c" {
		t.Errorf("credit entry %+v, correction %+v", u1[2], u1[1])
	}
	checkLedger(t, ledgerOf(t, db, "reewild", "u2"), []wantEntry{
		{projections.LedgerAward, "r2", "7.77", "7.77"},
		{projections.LedgerAwardMoved, "r2", "-7.77", "0"},
	})
	if _, _, err := db.Ledger(context.Background(), "reewild", "ghost", 10, ""); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("ledger of an unknown user: %v", err)
	}
	if _, _, err := db.Ledger(context.Background(), "reewild", "u1", 10, "bogus"); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("bad token: %v", err)
	}
	_, next, _ := db.Ledger(context.Background(), "reewild", "u1", 1, "")
	if _, _, err := db.Ledger(context.Background(), "reewild", "u2", 1, next); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("another user's token: %v", err)
	}
}

// TestLedgerCarriesHowEventsArrived: each entry names the delivery's
// provider event type, received time, scheme, key and body hash.
func TestLedgerCarriesHowEventsArrived(t *testing.T) {
	l := newLogStore(t)
	l.stage(aggregate.StageRecorded{ReceiptID: "r1", UserID: "u1", Stage: aggregate.StageAwarded, Award: &aggregate.Award{Points: decimal.RequireFromString("5")}})
	db := openDB(t)
	if err := projections.NewRunner(l.store, db, nil).CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ledgerOf(t, db, "reewild", "u1")
	if len(got) != 1 {
		t.Fatalf("ledger = %+v", got)
	}
	e := got[0].Event
	if e.ProviderEventType != "receipt.awarded" || e.Scheme != "hmac-sha256" || e.KeyID != "sha256:0123456789ab" || e.BodySHA256 != "body-1" || e.DeliveryID != "dlv-1" || !e.ReceivedAt.Equal(l.t0.Add(time.Second)) {
		t.Errorf("entry event = %+v", e)
	}
}
