package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

// The hand-written encoders write what encoding/json writes, byte for
// byte, for random records: strings with HTML, control characters,
// invalid UTF-8 and line separators; times in zones with nanoseconds;
// decimals of every exponent; absent and present optional fields.
func TestRecordEncodersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "reewild", "<b>&amp;</b>", "tab\there\nnl\r\x00\x1f\x7f", "caf\u00e9 \u2028\u2029 \U0001F600", "bad\xff\xfeutf8", `quote" back\slash`, "FAILED_VALIDATE"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	dec := func() decimal.Decimal {
		return decimal.New(rng.Int64N(2_000_000)-1_000_000, int32(rng.IntN(12)-8))
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600+1800), time.FixedZone("X", -7*3600)}
	tm := func() time.Time {
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)*int64(rng.IntN(2))).In(zones[rng.IntN(len(zones))])
	}
	opt := func() bool { return rng.IntN(2) == 0 }
	ptm := func() *time.Time {
		if opt() {
			return nil
		}
		x := tm()
		return &x
	}
	pdec := func() *decimal.Decimal {
		if opt() {
			return nil
		}
		x := dec()
		return &x
	}
	snap := func() *aggregate.Snapshot {
		if opt() {
			return nil
		}
		return &aggregate.Snapshot{AvailablePoints: dec(), LifetimePoints: dec(), NumTransactions: rng.Int64N(100)}
	}
	fail := func() *aggregate.Failure {
		if opt() {
			return nil
		}
		return &aggregate.Failure{Code: rng.Int64N(9), Name: str(), Message: str()}
	}
	check := func(what string, got []byte, v any) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got  %s\n want %s", what, got, want)
		}
	}
	for i := range 3000 {
		var facts []aggregate.StageRecorded
		for range rng.IntN(4) {
			f := aggregate.StageRecorded{Source: str(), ReceiptID: str(), UserID: str(), Stage: aggregate.Stages[rng.IntN(7)], OccurredAt: ptm(),
				BodySHA256: str(), Merchant: str(), Currency: str(), Amount: pdec(), Failure: fail()}
			if opt() {
				f.Award = &aggregate.Award{TransactionID: str(), Points: dec(), BonusPoints: dec(), HealthPoints: dec(), CO2e: dec(), GreenProducts: rng.Int64N(9) - 3, Snapshot: snap()}
			}
			facts = append(facts, f)
		}
		var e enc
		e.facts(facts)
		check(fmt.Sprintf("facts %d", i), e.b, facts)

		v := aggregate.ReceiptView{ReceiptID: str(), Source: str(), UserID: str(), Status: aggregate.ReceiptStatus(str()),
			Points: dec(), BonusPoints: dec(), HealthPoints: dec(), CO2e: dec(), GreenProducts: rng.Int64N(99), TransactionID: str(),
			Merchant: str(), Currency: str(), Amount: pdec(), Failure: fail(), Snapshot: snap()}
		if opt() {
			v.Stages = []aggregate.StageView{}
			for _, s := range aggregate.Stages {
				v.Stages = append(v.Stages, aggregate.StageView{Stage: s, Reported: opt(), OccurredAt: ptm(), Corrections: rng.IntN(3)})
			}
		}
		for range rng.IntN(3) {
			v.Anomalies = append(v.Anomalies, aggregate.Anomaly{Kind: str(), Detail: str()})
			v.UserIDs = append(v.UserIDs, str())
		}
		rec := receiptRecord{View: v, FirstPosition: rng.Uint64(), LastPosition: rng.Uint64N(1000)}
		e = enc{}
		e.receiptRecord(&rec)
		check(fmt.Sprintf("receipt record %d", i), e.b, rec)

		sr := statsReceipt{}
		if opt() {
			sr.Received = map[aggregate.Stage]time.Time{}
			for range rng.IntN(7) {
				sr.Received[aggregate.Stages[rng.IntN(7)]] = tm()
			}
		}
		if opt() {
			c := statsContribution{Status: aggregate.ReceiptStatus(str()), Day: str(), FailureStage: str(), Points: dec(), CO2e: dec(), ProviderTimed: opt(), AmountAnomaly: opt()}
			if opt() {
				ms := rng.Int64N(1e9)
				c.DurationMS = &ms
			}
			sr.Counted = &c
		}
		e = enc{}
		e.statsReceipt(&sr)
		check(fmt.Sprintf("stats receipt %d", i), e.b, sr)

		u := userRecord{Totals: aggregate.Totals{Completed: rng.Int64N(9), Failed: rng.Int64N(9), InProgress: rng.Int64N(9), Points: dec(), CO2e: dec(),
			GreenProducts: rng.Int64N(9), HealthPoints: dec(), AmountAnomalies: rng.Int64N(3)}, Credited: dec(), Reported: snap(), Enrolled: opt(), EnrolledAt: ptm(), CreditAnomalies: rng.Int64N(3)}
		e = enc{}
		e.userRecord(&u)
		check(fmt.Sprintf("user record %d", i), e.b, u)

		s := statsAgg{Completed: rng.Int64N(9), Failed: rng.Int64N(9), InProgress: rng.Int64N(3), Points: dec(), CO2e: dec(),
			ProviderTimed: rng.Int64N(3), NoDuration: rng.Int64N(3), AmountAnomalies: rng.Int64N(3), CreditAnomalies: rng.Int64N(3)}
		if opt() {
			s.FailedByStage = map[string]int64{}
			for range rng.IntN(4) {
				s.FailedByStage[str()] = rng.Int64N(50)
			}
		}
		if opt() {
			s.Durations = map[int32]int64{}
			for range rng.IntN(12) {
				s.Durations[histIndex(rng.Int64N(1e7))] = rng.Int64N(50)
			}
		}
		e = enc{}
		e.statsAgg(&s)
		check(fmt.Sprintf("stats agg %d", i), e.b, s)
	}
}

// appendDecimal writes what decimal.Decimal.String writes, for
// coefficients of every length and sign and exponents of every range.
func TestAppendDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ds []decimal.Decimal
	for _, s := range []string{"0", "-0", "1656.54", "-0.001", "100", "1e3", "1.50", "-1.50", "0.000000000000000001",
		"123456789012345678", "-123456789012345678", "1234567890123456789", "0.1234567890123456789", "9223372036854775807", "-9223372036854775808"} {
		d, err := decimal.NewFromString(s)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	for range 20000 {
		c := rng.Int64N(1 << uint(rng.IntN(63)))
		if rng.IntN(2) == 0 {
			c = -c
		}
		ds = append(ds, decimal.New(c, int32(rng.IntN(44)-22)))
	}
	for _, d := range ds {
		if got, want := string(appendDecimal([]byte("x"), d)), "x"+d.String(); got != want {
			t.Fatalf("appendDecimal(%s e%d) = %q, want %q", d.Coefficient(), d.Exponent(), got, want)
		}
	}
}

// BenchmarkAppendDecimal: appendDecimal against the String it replaces.
func BenchmarkAppendDecimal(b *testing.B) {
	d := decimal.RequireFromString("1656.54")
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendDecimal(buf[:0], d)
		}
	})
	b.Run("String", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = append(buf[:0], d.String()...)
		}
	})
}
