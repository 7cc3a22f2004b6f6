package projections

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

// TestBalanceEncoderMatchesEncodingJSON: the feed's balance views are
// encoding/json's bytes (the API decodes them with it).
func TestBalanceEncoderMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "u1", "<b>&</b>", "tab\t\x00", "caf\u00e9 \u2028", "bad\xff"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	dec := func() decimal.Decimal { return decimal.New(rng.Int64N(2_000_000)-1_000_000, int32(rng.IntN(12)-8)) }
	for range 2000 {
		b := Balance{Source: str(), UserID: str(), AwardedPoints: dec(), CreditedPoints: dec(), DerivedPoints: dec(), Reconciled: rng.IntN(2) == 0,
			ReceiptsCompleted: rng.Int64N(9), ReceiptsFailed: rng.Int64N(9), ReceiptsInProgress: rng.Int64N(9), TotalCO2e: dec(),
			TotalGreenProducts: rng.Int64N(99), TotalHealthPoints: dec(), Enrolled: rng.IntN(2) == 0, AmountAnomalies: rng.Int64N(3)}
		if rng.IntN(2) == 0 {
			b.Reported = &aggregate.Snapshot{AvailablePoints: dec(), LifetimePoints: dec(), NumTransactions: rng.Int64N(100)}
		}
		var e enc
		e.balance(&b)
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.b, want) {
			t.Fatalf("got  %s\nwant %s", e.b, want)
		}
	}
}

// A merge of run files holds at most the feed's budget in read buffers,
// however many runs there are: writeFeed merges at most feedFanIn runs at
// once, each with a runBuffer.
func TestFeedMergeBuffersWithinBudget(t *testing.T) {
	for _, budget := range []int64{4 << 10, 16 << 10, 1 << 20, 5 << 20, 16 << 20, 64 << 20} {
		fan := feedFanIn(budget)
		if fan < 2 {
			t.Fatalf("budget %d: fan-in %d", budget, fan)
		}
		for _, n := range []int{1, 2, 3, fan / 2, fan - 1, fan} {
			if n < 1 || n > fan {
				continue
			}
			size := runBuffer(budget, n)
			if size < minRunBuffer || size > maxRunBuffer {
				t.Errorf("budget %d, %d runs: buffer %d outside [%d, %d]", budget, n, size, minRunBuffer, maxRunBuffer)
			}
			if total := int64(n) * int64(size); total > max(budget, 2*minRunBuffer) {
				t.Errorf("budget %d, %d runs: %d bytes of buffers", budget, n, total)
			}
		}
	}
}
