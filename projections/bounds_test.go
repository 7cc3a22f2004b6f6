package projections_test

import (
	"context"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
)

// Issue 12 item 11: totalPoints -5 made a COMPLETED receipt worth -5 points
// with nothing to say so. The amount is kept as sent (the log records what
// was sent, and the sums stay exact) but flagged on the receipt, counted on
// the user's balance and in the statistics the metrics read.
func TestAmountsOutOfBoundsAreFlagged(t *testing.T) {
	db := openDB(t)
	var l log
	l.award("r1", "u1", "-5", "a", nil)
	l.award("r2", "u1", "20000000", "b", nil) // absurd: above MaxAmount
	l.award("r3", "u1", "74.28", "c", nil)
	l.credit("reward", "reewild", "u1", "tx1", "-3")
	l.credit("reward", "reewild", "u2", "tx2", "10")
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		receipt string
		flagged bool
	}{{"r1", true}, {"r2", true}, {"r3", false}} {
		v, err := db.Receipt(context.Background(), "reewild", tt.receipt)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != aggregate.StatusCompleted {
			t.Errorf("%s: status %s; an out-of-bounds award still completes the receipt", tt.receipt, v.Status)
		}
		if got := hasKind(v.Anomalies, aggregate.AnomalyAmountOutOfBounds); got != tt.flagged {
			t.Errorf("%s (points %s): amount anomaly = %v, want %v; anomalies %+v", tt.receipt, v.Points, got, tt.flagged, v.Anomalies)
		}
	}
	b := balanceOf(t, db, "reewild", "u1")
	// Kept as sent: the sums are exact, anomalies included.
	wantPoints(t, b, "20000069.28", "-3", "20000066.28")
	if b.AmountAnomalies != 3 {
		t.Errorf("u1 amount anomalies = %d, want 3 (two receipts, one credit)", b.AmountAnomalies)
	}
	if b2 := balanceOf(t, db, "reewild", "u2"); b2.AmountAnomalies != 0 {
		t.Errorf("u2 amount anomalies = %d, want 0", b2.AmountAnomalies)
	}
	totals, err := db.StatsTotals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, s := range totals {
		got[s.Source] = [2]int64{s.AmountAnomalies, s.CreditAnomalies}
	}
	if got["reewild"] != [2]int64{2, 0} || got["reward"] != [2]int64{0, 1} {
		t.Errorf("stats totals amount/credit anomalies = %v; want reewild [2 0], reward [0 1]", got)
	}

	// A correction that brings the award back in bounds clears the flag
	// and the counts, exactly.
	var l2 log
	l2.pos = l.pos
	l2.award("r1", "u1", "5", "z", nil) // "z" > "a": chosen
	if err := db.Apply(l2.events); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, db, "reewild", "u1"); b.AmountAnomalies != 2 {
		t.Errorf("after the correction: u1 amount anomalies = %d, want 2", b.AmountAnomalies)
	}
}
