package aggregate

import "github.com/shopspring/decimal"

// Sanity bounds on amounts. A provider may send anything its signature
// covers: a negative award, or one larger than any receipt could earn.
// Such amounts are kept as sent (the log records what was sent, and the
// views count them exactly), but the views flag them: the receipt with an
// AnomalyAmountOutOfBounds anomaly, the user's balance with a count.
//
// The bounds are constants so that a view stays a pure function of the
// facts: changing them changes views, which needs a new read-model schema
// (a rebuild), like any other rule change.

// MaxAmount is the greatest sane points, bonus points, health points or
// CO2e of one receipt, or points of one credit. A receipt's money amount
// is only checked for being negative (currencies differ too much in scale
// for one upper bound).
const MaxAmount = 10_000_000

var maxAmount = decimal.NewFromInt(MaxAmount)

// MaxGreenProducts is the greatest sane number of green products on one
// receipt.
const MaxGreenProducts = 100_000

// AmountInBounds reports whether d is a sane amount: 0 <= d <= MaxAmount.
func AmountInBounds(d decimal.Decimal) bool {
	return d.Sign() >= 0 && d.Cmp(maxAmount) <= 0
}

// outOfBounds names the amounts of v outside the sanity bounds, with their
// values, in a fixed order.
func (v *ReceiptView) outOfBounds() []string {
	var out []string
	check := func(name string, d decimal.Decimal) {
		if !AmountInBounds(d) {
			out = append(out, name+" "+d.String())
		}
	}
	check("points", v.Points)
	check("bonus points", v.BonusPoints)
	check("health points", v.HealthPoints)
	check("CO2e", v.CO2e)
	if v.GreenProducts < 0 || v.GreenProducts > MaxGreenProducts {
		out = append(out, "green products "+decimal.NewFromInt(v.GreenProducts).String())
	}
	if v.Amount != nil && v.Amount.Sign() < 0 {
		out = append(out, "amount "+v.Amount.String())
	}
	return out
}

// HasAmountAnomaly reports whether the view flags an amount outside the
// sanity bounds.
func (v *ReceiptView) HasAmountAnomaly() bool {
	for _, a := range v.Anomalies {
		if a.Kind == AnomalyAmountOutOfBounds {
			return true
		}
	}
	return false
}
