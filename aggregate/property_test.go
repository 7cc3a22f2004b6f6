package aggregate_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	"github.com/shopspring/decimal"
)

// delivery is one webhook as the handler sees it after normalization.
type delivery struct {
	fact aggregate.StageRecorded
}

func (d delivery) meta() aggregate.Metadata {
	return aggregate.Metadata{DedupeKey: string(d.fact.Stage) + ":r1:" + d.fact.BodySHA256, SlotKey: "stage:" + string(d.fact.Stage)}
}

// randomReceipt builds the distinct deliveries of one random receipt: a
// random subset of the pipeline stages, a terminal AWARDED, FAILED, both or
// neither, some stages corrected (reported with 2 or 3 different bodies),
// provider timestamps on some facts, and now and then a second user.
func randomReceipt(rng *rand.Rand) []delivery {
	users := []string{"027KO2"}
	if rng.IntN(5) == 0 {
		users = append(users, "07BVG7")
	}
	base := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	var out []delivery
	n := 0
	add := func(s aggregate.Stage) {
		versions := 1
		if rng.IntN(4) == 0 {
			versions += 1 + rng.IntN(2)
		}
		for range versions {
			n++
			f := aggregate.StageRecorded{
				Source: "reewild", ReceiptID: "r1", Stage: s,
				UserID:     users[rng.IntN(len(users))],
				BodySHA256: fmt.Sprintf("%064x", rng.Uint64()),
			}
			if rng.IntN(2) == 0 {
				t := base.Add(time.Duration(rng.IntN(3)) * time.Hour) // ties happen
				f.OccurredAt = &t
			}
			// When receiptd recorded the delivery: every fact has one (the
			// read models set it from the event's metadata); ties happen.
			rec := base.Add(time.Duration(rng.IntN(48)) * 30 * time.Minute)
			f.RecordedAt = &rec
			if rng.IntN(3) == 0 {
				f.Merchant = []string{"Tesco", "TESCO", "Sainsbury's"}[rng.IntN(3)]
				a := decimal.New(rng.Int64N(100000), -2)
				f.Amount = &a
			}
			switch s {
			case aggregate.StageAwarded:
				f.Award = &aggregate.Award{
					TransactionID: fmt.Sprintf("tx%d", rng.IntN(3)),
					Points:        decimal.New(rng.Int64N(1_000_000), -2),
					CO2e:          decimal.New(rng.Int64N(1_000_000_000), -9),
					HealthPoints:  decimal.New(rng.Int64N(10000), -2),
					GreenProducts: rng.Int64N(10),
					Snapshot: &aggregate.Snapshot{
						AvailablePoints: decimal.New(rng.Int64N(1_000_000), -2),
						LifetimePoints:  decimal.New(rng.Int64N(1_000_000), -2),
						NumTransactions: rng.Int64N(3),
					},
				}
			case aggregate.StageFailed:
				code := 1 + rng.Int64N(5)
				f.Failure = &aggregate.Failure{Code: code, Name: fmt.Sprintf("FAILED_%d", code), Message: "failed"}
			}
			out = append(out, delivery{fact: f})
		}
	}
	for _, s := range aggregate.Stages[:5] {
		if rng.IntN(2) == 0 {
			add(s)
		}
	}
	switch rng.IntN(4) {
	case 1:
		add(aggregate.StageAwarded)
	case 2:
		add(aggregate.StageFailed)
	case 3:
		add(aggregate.StageAwarded)
		add(aggregate.StageFailed)
	}
	if len(out) == 0 {
		add(aggregate.StageUploaded)
	}
	return out
}

// ingest runs deliveries through Decide exactly as the webhook handler does
// (appending what Decide accepts to an in-memory stream), then folds the
// stream into a receipt and returns its view as JSON.
func ingest(t *testing.T, ds []delivery) string {
	t.Helper()
	var history []aggregate.Metadata
	var stream []aggregate.StageRecorded
	for _, d := range ds {
		dec, err := aggregate.Decide(history, aggregate.Fact{DedupeKey: d.meta().DedupeKey, SlotKey: d.meta().SlotKey})
		if err != nil {
			t.Fatal(err)
		}
		if dec.Outcome == aggregate.Append {
			m := d.meta()
			m.Correction = dec.Correction
			history = append(history, m)
			stream = append(stream, d.fact)
		}
	}
	r := aggregate.NewReceipt("reewild", "r1")
	for _, f := range stream {
		if added, err := r.Add(f); err != nil || !added {
			t.Fatalf("stream holds a duplicate the decision let through: %v %v", added, err)
		}
	}
	b, err := json.Marshal(r.View())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// feedOf folds ds as ingest does and returns the feed events the receipt
// yields on the way (feed.ReceiptEvents of each appended fact), and the
// final view.
func feedOf(t *testing.T, ds []delivery) ([]feed.Event, aggregate.ReceiptView) {
	t.Helper()
	var history []aggregate.Metadata
	r := aggregate.NewReceipt("reewild", "r1")
	var prev *aggregate.ReceiptView
	var out []feed.Event
	at := time.Date(2025, 10, 8, 12, 0, 0, 0, time.UTC)
	for _, d := range ds {
		dec, err := aggregate.Decide(history, aggregate.Fact{DedupeKey: d.meta().DedupeKey, SlotKey: d.meta().SlotKey})
		if err != nil {
			t.Fatal(err)
		}
		if dec.Outcome != aggregate.Append {
			continue
		}
		history = append(history, d.meta())
		if added, err := r.Add(d.fact); err != nil || !added {
			t.Fatalf("stream holds a duplicate the decision let through: %v %v", added, err)
		}
		next := r.View()
		out = append(out, feed.ReceiptEvents(prev, &next, d.fact.OccurredAt, at)...)
		prev = &next
	}
	return out, *prev
}

// checkFeed: a receipt's feed, in any arrival order, reports its
// completion exactly once if it is COMPLETED (never otherwise), with one
// id; its failure at most once; each reported stage's first report exactly
// once; and no id twice.
func checkFeed(t *testing.T, evs []feed.Event, final aggregate.ReceiptView, completedID *string) error {
	count := map[string]int{}
	ids := map[string]bool{}
	for _, e := range evs {
		k := e.Kind
		if e.Kind == feed.KindReceiptProgressed {
			k += ":" + string(e.Stage)
		}
		count[k]++
		if ids[e.ID] {
			return fmt.Errorf("id %s (%s) twice", e.ID, k)
		}
		ids[e.ID] = true
		if e.Kind == feed.KindReceiptCompleted {
			if *completedID == "" {
				*completedID = e.ID
			}
			if e.ID != *completedID {
				return fmt.Errorf("receipt.completed.v1 with id %s, earlier %s", e.ID, *completedID)
			}
		}
	}
	wantCompleted := 0
	if final.Status == aggregate.StatusCompleted {
		wantCompleted = 1
	}
	if count[feed.KindReceiptCompleted] != wantCompleted {
		return fmt.Errorf("receipt.completed.v1 %d times, status %s", count[feed.KindReceiptCompleted], final.Status)
	}
	if count[feed.KindReceiptFailed] > 1 || (final.Status == aggregate.StatusFailed && count[feed.KindReceiptFailed] != 1) {
		return fmt.Errorf("receipt.failed.v1 %d times, status %s", count[feed.KindReceiptFailed], final.Status)
	}
	for _, s := range final.Stages {
		want := 0
		if s.Reported {
			want = 1
		}
		if n := count[feed.KindReceiptProgressed+":"+string(s.Stage)]; n != want {
			return fmt.Errorf("receipt.progressed.v1 of %s %d times, want %d", s.Stage, n, want)
		}
	}
	return nil
}

// TestViewIndependentOfOrder: for random receipts, at least 500 random
// permutations of each delivery set, with random exact duplicates, yield the
// identical view; and the first 100 of them the same feed facts: the
// receipt's receipt.completed.v1 exactly once (if it completes), with one
// id, and each stage's receipt.progressed.v1 exactly once.
func TestViewIndependentOfOrder(t *testing.T) {
	receipts, perms, feedPerms := 100, 500, 100
	if testing.Short() {
		receipts = 40
	}
	rng := rand.New(rand.NewPCG(20251121, 1))
	for i := range receipts {
		distinct := randomReceipt(rng)
		want := ingest(t, distinct)
		completedID := ""
		for p := range perms {
			ds := append([]delivery(nil), distinct...)
			for range rng.IntN(len(distinct) + 1) { // exact re-deliveries
				ds = append(ds, distinct[rng.IntN(len(distinct))])
			}
			rng.Shuffle(len(ds), func(a, b int) { ds[a], ds[b] = ds[b], ds[a] })
			if got := ingest(t, ds); got != want {
				t.Fatalf("receipt %d, permutation %d: view differs\nfirst: %s\nthis:  %s", i, p, want, got)
			}
			if p < feedPerms {
				evs, final := feedOf(t, ds)
				if err := checkFeed(t, evs, final, &completedID); err != nil {
					t.Fatalf("receipt %d, permutation %d: feed: %v", i, p, err)
				}
			}
		}
	}
}

// TestRecordedAtIsAMin: a stage's recorded_at is the earliest RecordedAt
// of the events that reported it, whatever their order, including a fact
// the log holds twice (the same body recorded again at another time, as
// two nodes racing on one delivery may append it): the read models add
// every event of the log, duplicates included, and the view must not
// depend on which of them came first.
func TestRecordedAtIsAMin(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261207, 16))
	base := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	for i := range 200 {
		events := randomReceipt(rng)
		for range 1 + rng.IntN(len(events)+1) { // the same body recorded again, at another time
			d := events[rng.IntN(len(events))]
			rec := base.Add(time.Duration(rng.IntN(48)-8) * 30 * time.Minute)
			d.fact.RecordedAt = &rec
			events = append(events, d)
		}
		want := map[aggregate.Stage]time.Time{}
		for _, d := range events {
			if w, ok := want[d.fact.Stage]; !ok || d.fact.RecordedAt.Before(w) {
				want[d.fact.Stage] = *d.fact.RecordedAt
			}
		}
		var first string
		for p := range 50 {
			rng.Shuffle(len(events), func(a, b int) { events[a], events[b] = events[b], events[a] })
			r := aggregate.NewReceipt("reewild", "r1")
			for _, d := range events {
				if _, err := r.Add(d.fact); err != nil {
					t.Fatal(err)
				}
			}
			v := r.View()
			for _, s := range v.Stages {
				w, ok := want[s.Stage]
				if ok != (s.RecordedAt != nil) || (ok && !s.RecordedAt.Equal(w)) {
					t.Fatalf("receipt %d, permutation %d: %s recorded_at %v, want %v (reported %v)", i, p, s.Stage, s.RecordedAt, w, ok)
				}
			}
			// The aggregate's persisted facts restore the same view.
			again := aggregate.NewReceipt("reewild", "r1")
			for _, f := range r.Facts() {
				if _, err := again.Add(f); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := json.Marshal(v)
			if b2, _ := json.Marshal(again.View()); string(b2) != string(b) {
				t.Fatalf("receipt %d: restored from Facts\n got  %s\n want %s", i, b2, b)
			}
			if p == 0 {
				first = string(b)
			} else if string(b) != first {
				t.Fatalf("receipt %d, permutation %d: view differs\nfirst: %s\nthis:  %s", i, p, first, b)
			}
		}
	}
}

// TestOverdue: a receipt in progress is overdue strictly after the window
// from its first recorded delivery; a terminal one never is.
func TestOverdue(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(2 * time.Hour)
	r := aggregate.NewReceipt("reewild", "r1")
	for _, f := range []aggregate.StageRecorded{
		{ReceiptID: "r1", Stage: aggregate.StageExtracted, BodySHA256: "b", RecordedAt: &t1},
		{ReceiptID: "r1", Stage: aggregate.StageUploaded, BodySHA256: "a", RecordedAt: &t0},
	} {
		if _, err := r.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	v := r.View()
	if first, ok := v.FirstRecorded(); !ok || !first.Equal(t0) {
		t.Fatalf("FirstRecorded %v %v, want %v", first, ok, t0)
	}
	w := aggregate.DefaultOverdueAfter
	if v.Overdue(t0.Add(w), w) || !v.Overdue(t0.Add(w+time.Nanosecond), w) || v.Overdue(t0.Add(time.Hour*1000), 0) {
		t.Fatal("overdue boundary wrong")
	}
	c := v
	if !c.MarkOverdue(t0.Add(24*time.Hour), w) || len(c.Anomalies) != 1 || c.Anomalies[0].Kind != aggregate.AnomalyOverdue {
		t.Fatalf("MarkOverdue: %+v", c.Anomalies)
	}
	if len(v.Anomalies) != 0 {
		t.Fatal("MarkOverdue changed the original view's anomalies")
	}
	if _, err := r.Add(aggregate.StageRecorded{ReceiptID: "r1", Stage: aggregate.StageFailed, BodySHA256: "c", RecordedAt: &t1}); err != nil {
		t.Fatal(err)
	}
	if v := r.View(); v.Overdue(t0.Add(1000*time.Hour), w) {
		t.Fatal("a failed receipt is overdue")
	}
}

// TestPropertyCanFail guards the property test itself: a fold that depends
// on arrival order (last fact wins) must be caught by the same comparison.
func TestPropertyCanFail(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	lastWins := func(ds []delivery) string {
		var last aggregate.StageRecorded
		for _, d := range ds {
			last = d.fact
		}
		return last.BodySHA256
	}
	for range 100 {
		ds := randomReceipt(rng)
		if len(ds) < 2 {
			continue
		}
		want := lastWins(ds)
		for range 50 {
			rng.Shuffle(len(ds), func(a, b int) { ds[a], ds[b] = ds[b], ds[a] })
			if lastWins(ds) != want {
				return // the comparison detects order dependence
			}
		}
	}
	t.Fatal("shuffling never changed an order-dependent fold: the property test could not fail")
}
