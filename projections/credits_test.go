package projections_test

import (
	"context"
	"errors"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

func (l *log) credit(source, balanceSource, user, tx, points string) {
	l.add(aggregate.TypeUserPointsCredited, aggregate.PointsCredited{
		Source: source, BalanceSource: balanceSource, UserID: user, TransactionID: tx,
		Points: decimal.RequireFromString(points), BodySHA256: "h-" + tx,
	})
}

func balanceOf(t *testing.T, db *projections.DB, source, user string) projections.Balance {
	t.Helper()
	b, err := db.Balance(context.Background(), source, user)
	if err != nil {
		t.Fatalf("Balance(%s/%s): %v", source, user, err)
	}
	return b
}

func wantPoints(t *testing.T, b projections.Balance, awarded, credited, derived string) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"awarded", b.AwardedPoints.String(), awarded},
		{"credited", b.CreditedPoints.String(), credited},
		{"derived", b.DerivedPoints.String(), derived},
	} {
		if c.got != c.want {
			t.Errorf("%s/%s %s points = %s, want %s", b.Source, b.UserID, c.name, c.got, c.want)
		}
	}
}

func TestCreditsAddToDerivedBalance(t *testing.T) {
	db := openDB(t)
	var l log
	snap := func(lifetime string) *aggregate.Snapshot {
		return &aggregate.Snapshot{LifetimePoints: decimal.RequireFromString(lifetime), AvailablePoints: decimal.RequireFromString(lifetime), NumTransactions: 1}
	}
	// u1: an award the provider's snapshot agrees with, plus Reward credits
	// joined to Reewild's user ids. 0.1 + 0.2 must be 0.3 to the digit.
	l.award("r1", "u1", "100.5", "a", snap("100.5"))
	l.credit("reward", "reewild", "u1", "t1", "0.1")
	l.credit("reward", "reewild", "u1", "t2", "0.2")
	// u2: the snapshot disagrees with the awards; a credit that happens to
	// make the derived balance equal to the snapshot does not hide that.
	l.award("r2", "u2", "10", "b", snap("15"))
	l.credit("reward", "reewild", "u2", "t3", "5")
	// u3: seen only through a credit.
	l.credit("reward", "reewild", "u3", "t4", "7.25")
	// A credit with no balance source adds to the crediting source's own
	// user namespace.
	l.credit("reward", "", "u1", "t5", "3")
	// A credit naming no user is skipped, not fatal.
	l.credit("reward", "reewild", "", "t6", "1000")
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}

	b := balanceOf(t, db, "reewild", "u1")
	wantPoints(t, b, "100.5", "0.3", "100.8")
	if !b.Reconciled || b.ReceiptsCompleted != 1 {
		t.Errorf("u1: snapshot 100.5 = awarded 100.5 must reconcile whatever the credits: %+v", b)
	}
	b = balanceOf(t, db, "reewild", "u2")
	wantPoints(t, b, "10", "5", "15")
	if b.Reconciled {
		t.Errorf("u2: snapshot 15 vs awarded 10 must not reconcile: %+v", b)
	}
	b = balanceOf(t, db, "reewild", "u3")
	wantPoints(t, b, "0", "7.25", "7.25")
	if !b.Reconciled || b.Reported != nil || b.ReceiptsCompleted != 0 || b.Enrolled {
		t.Errorf("u3, seen only through a credit: %+v", b)
	}
	wantPoints(t, balanceOf(t, db, "reward", "u1"), "0", "3", "3")
	if _, err := db.Balance(context.Background(), "reward", "u3"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("a credit to reewild's namespace made a reward balance: %v", err)
	}
	if got := db.Checkpoint().Commit; got != l.pos {
		t.Errorf("checkpoint = %d, want %d (the bad credit is skipped)", got, l.pos)
	}

	// Re-delivering the log (after a restart, an overlapping batch)
	// applies nothing twice.
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	wantPoints(t, balanceOf(t, db, "reewild", "u1"), "100.5", "0.3", "100.8")

	// Later awards and credits keep adding up.
	l.credit("reward", "reewild", "u3", "t7", "-0.25")
	l.award("r3", "u3", "1", "c", nil)
	if err := db.Apply(l.events[len(l.events)-2:]); err != nil {
		t.Fatal(err)
	}
	wantPoints(t, balanceOf(t, db, "reewild", "u3"), "1", "7", "8")
}
