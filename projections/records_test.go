package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

// recordGen makes random records with every field's edge cases: strings
// with HTML, control characters, invalid UTF-8 and line separators, hashes
// in and out of the compact form, times in zones with nanoseconds,
// decimals of every exponent and coefficients past 64 bits.
type recordGen struct{ rng *rand.Rand }

func (g recordGen) opt() bool { return g.rng.IntN(2) == 0 }

func (g recordGen) str() string {
	strs := []string{"", "a", "reewild", "<b>&amp;</b>", "tab\there\nnl\r\x00\x1f\x7f", "caf\u00e9 \u2028\u2029 \U0001F600", "bad\xff\xfeutf8", `quote" back\slash`, "FAILED_VALIDATE"}
	return strs[g.rng.IntN(len(strs))]
}

func (g recordGen) hash() string {
	switch g.rng.IntN(4) {
	case 0:
		return g.str()
	case 1:
		return fmt.Sprintf("%064X", g.rng.Uint64()) // upper case: not compact
	}
	return fmt.Sprintf("%016x%016x%016x%016x", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64())
}

func (g recordGen) dec() decimal.Decimal {
	switch g.rng.IntN(6) {
	case 0:
		big, _ := new(big.Int).SetString(fmt.Sprintf("-%d%018d", g.rng.Uint64(), g.rng.Uint64N(1e18)), 10)
		return decimal.NewFromBigInt(big, int32(g.rng.IntN(20)-10))
	case 1:
		return decimal.Zero
	}
	return decimal.New(g.rng.Int64N(2_000_000)-1_000_000, int32(g.rng.IntN(12)-8))
}

func (g recordGen) time() time.Time {
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600+1800), time.FixedZone("X", -7*3600), time.FixedZone("", 45)}
	return time.Unix(g.rng.Int64N(4e9)-1e9, g.rng.Int64N(1e9)*int64(g.rng.IntN(2))).In(zones[g.rng.IntN(len(zones))])
}

func (g recordGen) ptime() *time.Time {
	if g.opt() {
		return nil
	}
	t := g.time()
	return &t
}

func (g recordGen) pdec() *decimal.Decimal {
	if g.opt() {
		return nil
	}
	d := g.dec()
	return &d
}

func (g recordGen) snapshot() *aggregate.Snapshot {
	if g.opt() {
		return nil
	}
	return &aggregate.Snapshot{AvailablePoints: g.dec(), LifetimePoints: g.dec(), NumTransactions: g.rng.Int64N(100) - 5}
}

func (g recordGen) fact(source, id string, s aggregate.Stage) aggregate.StageRecorded {
	f := aggregate.StageRecorded{Source: source, ReceiptID: id, UserID: g.str(), Stage: s, OccurredAt: g.ptime(),
		BodySHA256: g.hash(), Merchant: g.str(), Currency: g.str(), Amount: g.pdec()}
	if f.BodySHA256 == "" {
		f.BodySHA256 = "h"
	}
	if g.opt() {
		f.Award = &aggregate.Award{TransactionID: g.str(), Points: g.dec(), BonusPoints: g.dec(), HealthPoints: g.dec(), CO2e: g.dec(),
			GreenProducts: g.rng.Int64N(9) - 3, Snapshot: g.snapshot()}
	}
	if g.opt() {
		f.Failure = &aggregate.Failure{Code: g.rng.Int64N(9) - 2, Name: g.str(), Message: g.str()}
	}
	return f
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every binary record decodes to what was encoded: the same JSON (the
// canonical form) and, encoded again, the same bytes.
func TestBinaryRecordsRoundTrip(t *testing.T) {
	g := recordGen{rand.New(rand.NewPCG(3, 4))}
	for i := range 3000 {
		source, id := g.str(), g.str()
		if source == "" {
			source = "s\x00rc" // a source may hold the key separator
		}
		st := receiptState{agg: aggregate.NewReceipt(source, id), first: g.rng.Uint64N(1 << 40), last: g.rng.Uint64()}
		for si, s := range aggregate.Stages {
			for range g.rng.IntN(3) {
				if _, err := st.agg.Add(g.fact(source, id, s)); err != nil {
					t.Fatal(err)
				}
			}
			if len(st.agg.StageFacts(si)) > 0 {
				st.received[si] = g.time()
			}
		}
		raw := appendReceiptState(nil, &st)
		k := key(source, id)
		if src, rid, err := receiptKeyParts(k, raw); err != nil || src != source || rid != id {
			t.Fatalf("receipt %d: key parts %q %q %v", i, src, rid, err)
		}
		got, err := decodeReceiptState(raw, source, id)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if !bytes.Equal(jsonOf(t, got.agg.Facts()), jsonOf(t, st.agg.Facts())) || got.first != st.first || got.last != st.last {
			t.Fatalf("receipt %d: facts\n got  %s\n want %s", i, jsonOf(t, got.agg.Facts()), jsonOf(t, st.agg.Facts()))
		}
		for si := range numStages {
			if len(st.agg.StageFacts(si)) > 0 && (!got.received[si].Equal(st.received[si]) || got.received[si].Format(time.RFC3339Nano) != st.received[si].Format(time.RFC3339Nano)) {
				t.Fatalf("receipt %d: received %d: %v, want %v", i, si, got.received[si], st.received[si])
			}
		}
		if again := appendReceiptState(nil, &got); !bytes.Equal(again, raw) {
			t.Fatalf("receipt %d: encoded again differs", i)
		}
		if _, err := decodeReceiptState(raw[:len(raw)-1], source, id); err == nil && len(raw) > 1 {
			t.Fatalf("receipt %d: a truncated record decodes", i)
		}

		u := userRecord{Totals: aggregate.Totals{Completed: g.rng.Int64N(9), Failed: g.rng.Int64N(9), InProgress: g.rng.Int64N(9) - 2, Points: g.dec(), CO2e: g.dec(),
			GreenProducts: g.rng.Int64N(9), HealthPoints: g.dec(), AmountAnomalies: g.rng.Int64N(3)}, Credited: g.dec(), Reported: g.snapshot(), Enrolled: g.opt(), EnrolledAt: g.ptime(), CreditAnomalies: g.rng.Int64N(3)}
		raw = appendUserRecord(nil, &u)
		gu, err := decodeUserRecord(raw)
		if err != nil || !bytes.Equal(jsonOf(t, gu), jsonOf(t, u)) || !bytes.Equal(appendUserRecord(nil, &gu), raw) {
			t.Fatalf("user %d: %v\n got  %s\n want %s", i, err, jsonOf(t, gu), jsonOf(t, u))
		}

		s := statsAgg{Completed: g.rng.Int64N(9), Failed: g.rng.Int64N(9), InProgress: g.rng.Int64N(3), Points: g.dec(), CO2e: g.dec(),
			ProviderTimed: g.rng.Int64N(3), NoDuration: g.rng.Int64N(3), AmountAnomalies: g.rng.Int64N(3), CreditAnomalies: g.rng.Int64N(3)}
		if g.opt() {
			s.FailedByStage = map[string]int64{}
			for range g.rng.IntN(4) {
				s.FailedByStage[g.str()] = g.rng.Int64N(50)
			}
		}
		if g.opt() {
			s.Durations = map[int32]int64{}
			for range g.rng.IntN(12) {
				s.Durations[histIndex(g.rng.Int64N(1e7))] = g.rng.Int64N(50)
			}
		}
		raw = appendStatsAgg(nil, &s)
		gs, err := decodeStatsAgg(raw)
		if err != nil || !bytes.Equal(jsonOf(t, gs), jsonOf(t, s)) || !bytes.Equal(appendStatsAgg(nil, &gs), raw) {
			t.Fatalf("stats %d: %v\n got  %s\n want %s", i, err, jsonOf(t, gs), jsonOf(t, s))
		}

		l := LedgerEntry{Position: g.rng.Uint64(), RecordedAt: g.time(), Kind: []string{LedgerAward, LedgerAwardCorrected, LedgerAwardMoved, LedgerCredit, g.str()}[g.rng.IntN(5)],
			Source: g.str(), ReceiptID: g.str(), TransactionID: g.str(), Points: g.dec(), Total: g.dec(),
			Event: EventMeta{ProviderEventType: g.str(), DeliveryID: g.str(), ReceivedAt: g.time(), Scheme: g.str(), KeyID: g.str(), BodySHA256: g.hash(), Correction: g.opt()}}
		var e enc
		e.ledgerEntry(&l)
		if want := jsonOf(t, l); !bytes.Equal(e.b, want) {
			t.Fatalf("ledger JSON %d:\n got  %s\n want %s", i, e.b, want)
		}
		raw = appendLedgerEntry(nil, &l)
		gl, err := decodeLedgerEntry(raw, l.Position)
		if err != nil || !bytes.Equal(jsonOf(t, gl), jsonOf(t, l)) || !bytes.Equal(appendLedgerEntry(nil, &gl), raw) {
			t.Fatalf("ledger %d: %v\n got  %s\n want %s", i, err, jsonOf(t, gl), jsonOf(t, l))
		}
	}
}

// A record that does not decode has a canonical value no record has, so
// an audit reports it rather than failing.
func TestCanonicalOfACorruptRecord(t *testing.T) {
	for _, name := range [][]byte{bucketReceiptFacts, bucketReceipts, bucketStatsReceipts, bucketUsers, bucketLedger, bucketStatsDays} {
		c := canonical(name)
		v, err := c.canonValue(nil, []byte("reewild\x00r1"), []byte{9, 9, 9})
		if err != nil || !bytes.HasPrefix(v, []byte("corrupt record: ")) {
			t.Errorf("%s: %q, %v", name, v, err)
		}
	}
}
