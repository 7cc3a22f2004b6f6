package aggregate_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
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

// TestViewIndependentOfOrder: for random receipts, at least 500 random
// permutations of each delivery set, with random exact duplicates, yield the
// identical view.
func TestViewIndependentOfOrder(t *testing.T) {
	receipts, perms := 100, 500
	if testing.Short() {
		receipts = 40
	}
	rng := rand.New(rand.NewPCG(20251121, 1))
	for i := range receipts {
		distinct := randomReceipt(rng)
		want := ingest(t, distinct)
		for p := range perms {
			ds := append([]delivery(nil), distinct...)
			for range rng.IntN(len(distinct) + 1) { // exact re-deliveries
				ds = append(ds, distinct[rng.IntN(len(distinct))])
			}
			rng.Shuffle(len(ds), func(a, b int) { ds[a], ds[b] = ds[b], ds[a] })
			if got := ingest(t, ds); got != want {
				t.Fatalf("receipt %d, permutation %d: view differs\nfirst: %s\nthis:  %s", i, p, want, got)
			}
		}
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
