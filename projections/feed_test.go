package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	rfeed "github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

// readFeed reads the whole feed of db.
func readFeed(t *testing.T, db *projections.DB) []rfeed.Event {
	t.Helper()
	var out []rfeed.Event
	var after uint64
	for {
		evs, upTo, err := db.ReadFeed(context.Background(), after, 7)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if len(evs) < 7 {
			if upTo != rfeed.HeadAt(db.Checkpoint().Commit) {
				t.Fatalf("upTo %d at the end, want the head %d", upTo, rfeed.HeadAt(db.Checkpoint().Commit))
			}
			return out
		}
		after = upTo
	}
}

// summary is an event as "position kind subject".
func summary(e rfeed.Event) string {
	s := fmt.Sprintf("%d.%d %s", e.LogPosition(), e.Position&(rfeed.MaxPerLogEvent-1), e.Kind)
	switch {
	case e.Stage != "":
		s += " " + string(e.Stage)
	case len(e.Anomalies) > 0:
		s += " " + e.Anomalies[0].Kind
	}
	if e.ReceiptID != "" {
		s += " " + e.ReceiptID
	}
	if e.EntityID != "" {
		s += " " + e.EntityKind + "/" + e.EntityID
	}
	return s + " " + fmt.Sprint(e.UserIDs)
}

// TestFeedOfTheReadModels: the read models derive the feed in the
// transaction of each log event, in a fixed order: a receipt's events,
// then each changed user's balance change and enrolment (or a credit's
// anomaly); an entity's change; the views as the read models hold them.
func TestFeedOfTheReadModels(t *testing.T) {
	db := openDB(t)
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")                                                                              // 1
	l.award("r1", "u1", "74.28", "b", &aggregate.Snapshot{LifetimePoints: decimal.RequireFromString("74.28"), NumTransactions: 1}) // 2
	l.stage("r1", "u1", aggregate.StageUploaded, "a2")                                                                             // 3: a correction
	l.add(aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: "u2"})                                     // 4
	l.add(aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: "u2"})                                     // 5: again
	l.credit("reward", "reewild", "u1", "t1", "-5")                                                                                // 6: out of bounds
	l.entity(aggregate.EntityEventRecorded{EntityID: "o1", Status: "open", UserID: "u2", BodySHA256: "e"})                         // 7
	l.award("r1", "u2", "10", "c", nil)                                                                                            // 8: moves r1 to u2? (a correction of AWARDED)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	var got []string
	evs := readFeed(t, db)
	for _, e := range evs {
		got = append(got, summary(e))
	}
	want := []string{
		"1.0 receipt.progressed.v1 UPLOADED r1 [u1]",
		"1.1 balance.changed.v1 [u1]",
		"2.0 receipt.progressed.v1 AWARDED r1 [u1]",
		"2.1 receipt.completed.v1 r1 [u1]",
		"2.2 balance.changed.v1 [u1]",
		"3.0 anomaly.detected.v1 correction r1 [u1]",
		"4.0 user.enrolled.v1 [u2]",
		"6.0 balance.changed.v1 [u1]",
		"6.1 anomaly.detected.v1 amount_out_of_bounds [u1]",
		"7.0 entity.changed.v1 offer/o1 [u2]",
	}
	// The AWARDED correction at 8 (another user, other points) is chosen
	// or not by its body hash: its events follow from the views.
	r, err := db.Receipt(context.Background(), "reewild", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.UserID == "u2" {
		want = append(want, "8.0 anomaly.detected.v1 correction r1 [u2]", "8.1 anomaly.detected.v1 user_mismatch r1 [u2]", "8.2 balance.changed.v1 [u1]", "8.3 balance.changed.v1 [u2]")
	} else {
		want = append(want, "8.0 anomaly.detected.v1 correction r1 [u1]", "8.1 anomaly.detected.v1 user_mismatch r1 [u1]")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("feed:\n%q\nwant\n%q", got, want)
	}
	for _, e := range evs {
		switch e.Kind {
		case rfeed.KindReceiptCompleted:
			var v aggregate.ReceiptView
			if err := json.Unmarshal(e.View, &v); err != nil || v.Status != aggregate.StatusCompleted || v.Points.String() != "74.28" {
				t.Errorf("completed view %s: %v", e.View, err)
			}
		case rfeed.KindUserEnrolled:
			var b projections.Balance
			if err := json.Unmarshal(e.View, &b); err != nil || !b.Enrolled || b.UserID != "u2" {
				t.Errorf("enrolled view %s: %v", e.View, err)
			}
		}
		if e.RecordedAt != recordedAt(e.LogPosition()) {
			t.Errorf("%s: recorded at %v", summary(e), e.RecordedAt)
		}
	}
	if b := evs[7]; b.Kind != rfeed.KindBalanceChanged {
		t.Fatal(summary(b))
	} else {
		var v projections.Balance
		if err := json.Unmarshal(b.View, &v); err != nil || v.CreditedPoints.String() != "-5" || v.DerivedPoints.String() != "69.28" || v.AmountAnomalies != 1 {
			t.Errorf("balance after the credit %s: %v", b.View, err)
		}
	}
}

// TestFeedLiveEqualsRebuildInAnyOrder is the feed's property over orders
// of delivery: the same deliveries (stages, exact re-deliveries,
// corrections, failures, awards with snapshots, credits, enrolments,
// entities) in logs of many orders. For each log, the feed that live
// Apply stores (in batches of any size) equals, event for event and byte
// for byte, the feed a rebuild of the same log stores (its bulk build,
// also under budgets that make its records and its feed spill); and in
// every order each receipt with an award is completed exactly once,
// always with the same id, the others never, and no id appears twice.
func TestFeedLiveEqualsRebuildInAnyOrder(t *testing.T) {
	type delivery func(l *log)
	var ds []delivery
	const receipts = 8
	stage := func(l *log, f aggregate.StageRecorded) {
		f.Source = "reewild"
		e := l.add(aggregate.TypeReceiptStageRecorded, f)
		l.events[len(l.events)-1].Stream = aggregate.StreamID(aggregate.CategoryReceipt, "reewild", f.ReceiptID)
		_ = e
	}
	for r := range receipts {
		id, user := fmt.Sprintf("r%d", r), fmt.Sprintf("u%d", r%3)
		for _, st := range []aggregate.Stage{aggregate.StageUploaded, aggregate.StageExtracted, aggregate.StageScored} {
			ds = append(ds, func(l *log) {
				stage(l, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: st, BodySHA256: id + string(st)})
			})
		}
		ds = append(ds, func(l *log) { // an exact re-delivery
			stage(l, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageUploaded, BodySHA256: id + string(aggregate.StageUploaded)})
		})
		if r%4 != 3 {
			n := int64(r + 1)
			award := func(hash, points string) delivery {
				return func(l *log) {
					stage(l, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageAwarded, BodySHA256: hash,
						Award: &aggregate.Award{Points: decimal.RequireFromString(points), CO2e: decimal.RequireFromString("0.5"), GreenProducts: 1,
							Snapshot: &aggregate.Snapshot{AvailablePoints: decimal.New(n, 0), LifetimePoints: decimal.New(n*10, 0), NumTransactions: n}}})
				}
			}
			ds = append(ds, award(id+"aw", "10"), award(id+"aw2", "12.50")) // the second a correction
		}
		if r%2 == 0 {
			ds = append(ds, func(l *log) {
				stage(l, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageFailed, BodySHA256: id + "f",
					Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "blurry"}})
			})
		}
		if r == 5 { // another user names the receipt: user_mismatch
			ds = append(ds, func(l *log) {
				stage(l, aggregate.StageRecorded{ReceiptID: id, UserID: "u9", Stage: aggregate.StageEnriched, BodySHA256: id + "x"})
			})
		}
	}
	for u := range 3 {
		user := fmt.Sprintf("u%d", u)
		ds = append(ds,
			func(l *log) {
				l.add(aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: user})
			},
			func(l *log) {
				l.add(aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: user})
			},
			func(l *log) { l.credit("reward", "reewild", user, "t"+user, "5") },
			func(l *log) { l.credit("reward", "reewild", user, "tb"+user, "-1") }, // out of bounds
			func(l *log) {
				l.entity(aggregate.EntityEventRecorded{EntityID: "o" + user, Status: "open", UserID: user, BodySHA256: "e" + user})
				l.events[len(l.events)-1].Stream = aggregate.StreamID(aggregate.CategoryOffer, "reusely", "o"+user)
			},
		)
	}

	defer projections.SetFeedSpillBytes(4 << 10)()
	rng := rand.New(rand.NewPCG(15, 1))
	completedID := map[string]string{}
	for order := range 12 {
		rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		var l log
		for _, d := range ds {
			d(&l)
		}
		live := openDB(t)
		for i := 0; i < len(l.events); {
			n := 1 + rng.IntN(10)
			if err := live.Apply(l.events[i:min(i+n, len(l.events))]); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		want := readFeed(t, live)

		completed := map[string]int{}
		ids := map[string]bool{}
		for _, e := range want {
			if ids[e.ID] {
				t.Errorf("order %d: id %s twice (%s)", order, e.ID, summary(e))
			}
			ids[e.ID] = true
			if e.Kind == rfeed.KindReceiptCompleted {
				completed[e.ReceiptID]++
				if id, ok := completedID[e.ReceiptID]; ok && id != e.ID {
					t.Errorf("order %d: %s completed as %s, earlier %s", order, e.ReceiptID, e.ID, id)
				}
				completedID[e.ReceiptID] = e.ID
			}
		}
		for r := range receipts {
			n, want := completed[fmt.Sprintf("r%d", r)], 1
			if r%4 == 3 {
				want = 0
			}
			if n != want {
				t.Errorf("order %d: r%d completed %d times, want %d", order, r, n, want)
			}
		}

		for _, budget := range []int64{projections.DefaultCacheBytes, 8 << 10} {
			db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"), projections.WithCacheBytes(budget))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Rebuild(context.Background(), &memStore{events: l.events}, projections.RebuildOptions{}); err != nil {
				t.Fatal(err)
			}
			got := readFeed(t, db)
			db.Close()
			if len(got) != len(want) {
				t.Fatalf("order %d, budget %d: the rebuild's feed has %d events, live apply's %d", order, budget, len(got), len(want))
			}
			for i := range want {
				g, _ := rfeed.Marshal(got[i])
				w, _ := rfeed.Marshal(want[i])
				if got[i].Position != want[i].Position || !bytes.Equal(g, w) {
					t.Fatalf("order %d, budget %d: event %d:\nrebuild %s %s\nlive    %s %s", order, budget, i, summary(got[i]), got[i].View, summary(want[i]), want[i].View)
				}
			}
		}
	}
}

// TestFeedRead: ReadFeed covers up to the head even past the last event;
// WaitFeed waits for the read models to apply a later log event.
func TestFeedRead(t *testing.T) {
	db := openDB(t)
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	l.add(aggregate.TypeDeliveryQuarantined, aggregate.Quarantined{Source: "reewild", Reason: "x", BodySHA256: "q"}) // no feed event
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	evs, upTo, err := db.ReadFeed(context.Background(), 0, 100)
	if err != nil || len(evs) != 2 || upTo != rfeed.HeadAt(2) || db.FeedHead() != rfeed.HeadAt(2) {
		t.Fatalf("%d events up to %d, %v", len(evs), upTo, err)
	}
	if evs, upTo, _ := db.ReadFeed(context.Background(), upTo, 100); len(evs) != 0 || upTo != rfeed.HeadAt(2) {
		t.Fatalf("after the head: %d events up to %d", len(evs), upTo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := db.WaitFeed(ctx, upTo); err == nil || ctx.Err() == nil {
		t.Fatalf("WaitFeed at the head: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- db.WaitFeed(context.Background(), upTo) }()
	if err := db.Apply([]eventstore.RecordedEvent{l.stage("r2", "u1", aggregate.StageUploaded, "b")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
