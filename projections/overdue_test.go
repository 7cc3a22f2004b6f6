package projections_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
)

// TestOverdueIndex: receipts in progress are listed longest waiting first
// and counted overdue past the window, at a "now" the test chooses (no
// sleeping); a receipt leaves the index when it turns terminal; an
// earlier-recorded delivery moves it; a rebuild holds the same index (the
// receipts digest covers it).
func TestOverdueIndex(t *testing.T) {
	ctx := context.Background()
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")  // recorded at 1 s
	l.stage("r2", "u1", aggregate.StageExtracted, "b") // 2 s
	l.stage("r3", "u2", aggregate.StageUploaded, "c")  // 3 s
	l.award("r3", "u2", "5", "d", nil)                 // r3 completes
	l.stage("r4", "u2", aggregate.StageUploaded, "e")  // 5 s
	// r2's UPLOADED arrives later in the log but was recorded earlier
	// (another node's clock): r2 moves to the front.
	l.stage("r2", "u1", aggregate.StageUploaded, "f")
	l.events[len(l.events)-1].RecordedAt = recordedAt(0)

	db := openDB(t)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	ids := func(vs []aggregate.ReceiptView) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.ReceiptID)
		}
		return out
	}
	all, next, err := db.InProgress(ctx, "reewild", time.Time{}, 10, "")
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	if got := ids(all); len(got) != 3 || got[0] != "r2" || got[1] != "r1" || got[2] != "r4" {
		t.Fatalf("in progress %v, want [r2 r1 r4]", got)
	}
	// Paging.
	p1, tok, err := db.InProgress(ctx, "reewild", time.Time{}, 2, "")
	if err != nil || tok == "" || len(p1) != 2 {
		t.Fatalf("page 1: %v %q %v", ids(p1), tok, err)
	}
	p2, tok2, err := db.InProgress(ctx, "reewild", time.Time{}, 2, tok)
	if err != nil || tok2 != "" || len(p2) != 1 || p2[0].ReceiptID != "r4" {
		t.Fatalf("page 2: %v %q %v", ids(p2), tok2, err)
	}
	if _, _, err := db.InProgress(ctx, "reewild", time.Time{}, 2, "bm90IGEgdG9rZW4"); err == nil {
		t.Fatal("a foreign page token was accepted")
	}

	window := aggregate.DefaultOverdueAfter
	win := func(string) time.Duration { return window }
	// At first+window exactly, nothing is overdue; a nanosecond later r2.
	now := recordedAt(0).Add(window)
	counts, err := db.OverdueCounts(ctx, now, win)
	if err != nil || counts["reewild"] != 0 {
		t.Fatalf("counts at the boundary: %v %v", counts, err)
	}
	now = now.Add(time.Nanosecond)
	counts, _ = db.OverdueCounts(ctx, now, win)
	od, _, err := db.InProgress(ctx, "reewild", now.Add(-window), 10, "")
	if err != nil || counts["reewild"] != 1 || len(od) != 1 || od[0].ReceiptID != "r2" {
		t.Fatalf("overdue: %v %v %v", counts, ids(od), err)
	}
	if !od[0].Overdue(now, window) {
		t.Fatal("listed overdue, but the view says not")
	}
	now = recordedAt(5).Add(window + time.Second)
	counts, _ = db.OverdueCounts(ctx, now, win)
	if counts["reewild"] != 3 {
		t.Fatalf("all three overdue: %v", counts)
	}
	st, err := db.Stats(ctx, projections.StatsQuery{Overdue: &projections.OverdueQuery{Now: now, After: win}})
	if err != nil || len(st.Sources) != 1 || st.Sources[0].Overdue != 3 || st.Sources[0].InProgress != 3 {
		t.Fatalf("stats: %+v %v", st, err)
	}

	// r1 fails: it leaves the index.
	var l2 log
	l2.pos = l.pos
	l2.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{Source: "reewild", ReceiptID: "r1", Stage: aggregate.StageFailed, BodySHA256: "g",
		Failure: &aggregate.Failure{Code: 1, Name: "FAILED_UPLOAD"}})
	if err := db.Apply(l2.events); err != nil {
		t.Fatal(err)
	}
	counts, _ = db.OverdueCounts(ctx, now, win)
	if counts["reewild"] != 2 {
		t.Fatalf("after r1 failed: %v", counts)
	}

	// The rebuild's index is the live one.
	store := &memStore{events: append(append([]eventstore.RecordedEvent(nil), l.events...), l2.events...)}
	rb, err := projections.Open(filepath.Join(t.TempDir(), "rebuilt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if _, err := rb.Rebuild(ctx, store, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	liveSums, _, err := db.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rbSums, _, err := rb.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range liveSums {
		if liveSums[i] != rbSums[i] {
			t.Errorf("live %+v, rebuilt %+v", liveSums[i], rbSums[i])
		}
	}
	c2, _ := rb.OverdueCounts(ctx, now, win)
	if c2["reewild"] != 2 {
		t.Fatalf("rebuilt counts %v", c2)
	}
}

// TestOverdueSweep: the sweep counts at its clock's now and exports the
// counts; a fake clock stands in for 23 hours.
func TestOverdueSweep(t *testing.T) {
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	l.stage("r2", "u1", aggregate.StageUploaded, "b")
	db := openDB(t)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	now := recordedAt(1)
	sw := projections.NewOverdueSweep(db, []string{"reewild"}, func() time.Time { return now },
		func(string) time.Duration { return aggregate.DefaultOverdueAfter }, nil)
	metric := func() string {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(sw)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "receiptd_receipts_overdue" {
				return fmt.Sprint(mf.GetMetric()[0].GetGauge().GetValue())
			}
		}
		return "none"
	}
	if got := metric(); got != "0" {
		t.Fatalf("before a sweep: %s, want a configured source's 0", got)
	}
	for _, step := range []struct {
		at   time.Time
		want int64
	}{
		{recordedAt(1).Add(time.Hour), 0},
		{recordedAt(1).Add(aggregate.DefaultOverdueAfter + time.Second), 1},
		{recordedAt(2).Add(aggregate.DefaultOverdueAfter + time.Second), 2},
	} {
		now = step.at
		got, err := sw.Sweep(context.Background())
		if err != nil || got["reewild"] != step.want {
			t.Fatalf("at %v: %v %v, want %d", step.at, got, err, step.want)
		}
		if m := metric(); m != fmt.Sprint(step.want) {
			t.Fatalf("at %v: metric %s, want %d", step.at, m, step.want)
		}
	}
}
