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
