package aggregate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ts(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// fact builds a StageRecorded for receipt r1 of source reewild.
func fact(stage aggregate.Stage, hash, user string) aggregate.StageRecorded {
	return aggregate.StageRecorded{Source: "reewild", ReceiptID: "r1", UserID: user, Stage: stage, BodySHA256: hash}
}

func award(hash, user, points, tx string, snap *aggregate.Snapshot) aggregate.StageRecorded {
	f := fact(aggregate.StageAwarded, hash, user)
	f.Award = &aggregate.Award{TransactionID: tx, Points: dec(points), CO2e: dec("2.55"), HealthPoints: dec("37.14"), GreenProducts: 4, Snapshot: snap}
	return f
}

func failed(hash, user string, code int64, name string) aggregate.StageRecorded {
	f := fact(aggregate.StageFailed, hash, user)
	f.Failure = &aggregate.Failure{Code: code, Name: name, Message: "Receipt validation failed"}
	return f
}

func view(t *testing.T, facts ...aggregate.StageRecorded) aggregate.ReceiptView {
	t.Helper()
	r := aggregate.NewReceipt("reewild", "r1")
	for _, f := range facts {
		if _, err := r.Add(f); err != nil {
			t.Fatalf("Add(%s): %v", f.Stage, err)
		}
	}
	return r.View()
}

func stage(v aggregate.ReceiptView, s aggregate.Stage) aggregate.StageView {
	for _, sv := range v.Stages {
		if sv.Stage == s {
			return sv
		}
	}
	panic("no stage " + s)
}

func hasAnomaly(v aggregate.ReceiptView, kind string) bool {
	for _, a := range v.Anomalies {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// Rule: any stage event may be the first one seen; the aggregate exists from
// its first event.
func TestRuleAnyStageFirst(t *testing.T) {
	for _, s := range aggregate.Stages {
		t.Run(string(s), func(t *testing.T) {
			var f aggregate.StageRecorded
			switch s {
			case aggregate.StageAwarded:
				f = award("h", "u1", "74.28", "tx1", nil)
			case aggregate.StageFailed:
				f = failed("h", "u1", 5, "FAILED_VALIDATE")
			default:
				f = fact(s, "h", "u1")
			}
			v := view(t, f)
			if v.ReceiptID != "r1" || v.UserID != "u1" {
				t.Fatalf("view = %+v", v)
			}
			for _, sv := range v.Stages {
				if sv.Reported != (sv.Stage == s) {
					t.Errorf("stage %s reported = %v after only %s", sv.Stage, sv.Reported, s)
				}
			}
			want := map[aggregate.Stage]aggregate.ReceiptStatus{aggregate.StageAwarded: aggregate.StatusCompleted, aggregate.StageFailed: aggregate.StatusFailed}[s]
			if want == "" {
				want = aggregate.StatusInProgress
			}
			if v.Status != want {
				t.Errorf("status = %s, want %s", v.Status, want)
			}
		})
	}
}

// Rule: exact re-delivery (same stage, same body hash) is a duplicate.
func TestRuleExactRedeliveryIsDuplicate(t *testing.T) {
	tests := []struct {
		name    string
		history []aggregate.Metadata
		fact    aggregate.Fact
		want    aggregate.Decision
		wantErr error
	}{
		{"first", nil, aggregate.Fact{DedupeKey: "a", SlotKey: "stage:EXTRACTED"}, aggregate.Decision{Outcome: aggregate.Append}, nil},
		{"same body", []aggregate.Metadata{{DedupeKey: "a", SlotKey: "stage:EXTRACTED"}}, aggregate.Fact{DedupeKey: "a", SlotKey: "stage:EXTRACTED"}, aggregate.Decision{Outcome: aggregate.Duplicate}, nil},
		{"other stage", []aggregate.Metadata{{DedupeKey: "a", SlotKey: "stage:EXTRACTED"}}, aggregate.Fact{DedupeKey: "b", SlotKey: "stage:ENRICHED"}, aggregate.Decision{Outcome: aggregate.Append}, nil},
		{"no dedupe key", nil, aggregate.Fact{}, aggregate.Decision{}, aggregate.ErrUnnormalizable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := aggregate.Decide(tt.history, tt.fact)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Decide = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	r := aggregate.NewReceipt("reewild", "r1")
	if added, _ := r.Add(fact(aggregate.StageExtracted, "h", "u1")); !added {
		t.Fatal("first Add reported a duplicate")
	}
	if added, _ := r.Add(fact(aggregate.StageExtracted, "h", "u1")); added {
		t.Fatal("second identical Add was not a duplicate")
	}
}

// Rule: same stage with a different body is appended and flagged as a
// correction; the view counts the anomaly.
func TestRuleSameStageDifferentBodyIsCorrection(t *testing.T) {
	hist := []aggregate.Metadata{{DedupeKey: "a", SlotKey: "stage:EXTRACTED"}}
	d, err := aggregate.Decide(hist, aggregate.Fact{DedupeKey: "b", SlotKey: "stage:EXTRACTED", OnConflict: aggregate.Correct})
	if err != nil || d != (aggregate.Decision{Outcome: aggregate.Append, Correction: true}) {
		t.Fatalf("Decide = %+v, %v; want append with correction", d, err)
	}
	_, err = aggregate.Decide(hist, aggregate.Fact{DedupeKey: "b", SlotKey: "stage:EXTRACTED", OnConflict: aggregate.Reject})
	if !errors.Is(err, aggregate.ErrConflict) {
		t.Fatalf("Decide with Reject policy: err = %v, want ErrConflict", err)
	}

	older := fact(aggregate.StageExtracted, "ffff", "u1")
	older.OccurredAt = ts("2025-10-08T11:00:00Z")
	older.Merchant = "TESCO OLD"
	newer := fact(aggregate.StageExtracted, "0000", "u1")
	newer.OccurredAt = ts("2025-10-08T12:00:00Z")
	newer.Merchant = "TESCO"
	v := view(t, newer, older)
	if got := stage(v, aggregate.StageExtracted); got.Corrections != 1 || !got.OccurredAt.Equal(*newer.OccurredAt) {
		t.Errorf("EXTRACTED = %+v; want 1 correction and the later fact chosen", got)
	}
	if v.Merchant != "TESCO" {
		t.Errorf("merchant = %q, want the later fact's", v.Merchant)
	}
	if !hasAnomaly(v, aggregate.AnomalyCorrection) {
		t.Errorf("no correction anomaly in %+v", v.Anomalies)
	}

	// A second award with a different transaction is an anomaly, never a
	// second credit.
	v = view(t, award("aa", "u1", "74.28", "tx1", nil), award("bb", "u1", "10", "tx2", nil))
	if !v.Points.Equal(dec("74.28")) && !v.Points.Equal(dec("10")) {
		t.Errorf("points = %s; want one award's points, not a sum", v.Points)
	}
	if !hasAnomaly(v, aggregate.AnomalyCorrection) {
		t.Errorf("no anomaly for two different awards: %+v", v.Anomalies)
	}
}

// Rule: AWARDED makes the receipt COMPLETED whatever else arrives; later
// stage events still fill in the timeline.
func TestRuleAwardedIsCompleted(t *testing.T) {
	v := view(t, award("h1", "u1", "74.28", "tx1", nil), fact(aggregate.StageExtracted, "h2", "u1"), fact(aggregate.StageScored, "h3", "u1"))
	if v.Status != aggregate.StatusCompleted {
		t.Fatalf("status = %s", v.Status)
	}
	if !stage(v, aggregate.StageExtracted).Reported || !stage(v, aggregate.StageScored).Reported {
		t.Error("stages that arrived after AWARDED are not in the timeline")
	}
	if !v.Points.Equal(dec("74.28")) || !v.CO2e.Equal(dec("2.55")) || v.GreenProducts != 4 || v.TransactionID != "tx1" {
		t.Errorf("award fields = %s %s %d %s", v.Points, v.CO2e, v.GreenProducts, v.TransactionID)
	}
}

// Rule: FAILED without AWARDED makes it FAILED, with the failure stage as sent.
func TestRuleFailedIsFailed(t *testing.T) {
	v := view(t, fact(aggregate.StageUploaded, "h1", "u1"), failed("h2", "u1", 5, "FAILED_VALIDATE"))
	if v.Status != aggregate.StatusFailed {
		t.Fatalf("status = %s", v.Status)
	}
	if v.Failure == nil || v.Failure.Code != 5 || v.Failure.Name != "FAILED_VALIDATE" {
		t.Errorf("failure = %+v", v.Failure)
	}
	if !v.Points.IsZero() {
		t.Errorf("failed receipt has points %s", v.Points)
	}
}

// Rule: both terminals seen: COMPLETED, with a conflicting-terminals anomaly.
func TestRuleBothTerminalsIsCompletedWithAnomaly(t *testing.T) {
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		fs := []aggregate.StageRecorded{failed("h1", "u1", 4, "FAILED_SCORE"), award("h2", "u1", "74.28", "tx1", nil)}
		v := view(t, fs[order[0]], fs[order[1]])
		if v.Status != aggregate.StatusCompleted || !hasAnomaly(v, aggregate.AnomalyConflictingTerminals) {
			t.Errorf("order %v: status %s anomalies %+v", order, v.Status, v.Anomalies)
		}
		if !v.Points.Equal(dec("74.28")) {
			t.Errorf("points %s: the credited points must count", v.Points)
		}
	}
}

// Rule: stages never reported before a terminal event show as not reported.
func TestRuleUnreportedStagesStayUnreported(t *testing.T) {
	v := view(t, fact(aggregate.StageUploaded, "h1", "u1"), award("h2", "u1", "1", "tx", nil))
	for _, s := range []aggregate.Stage{aggregate.StageExtracted, aggregate.StageEnriched, aggregate.StageValidated, aggregate.StageScored, aggregate.StageFailed} {
		if stage(v, s).Reported {
			t.Errorf("stage %s shows as reported", s)
		}
	}
	if len(v.Stages) != len(aggregate.Stages) {
		t.Errorf("view lists %d stages, want %d", len(v.Stages), len(aggregate.Stages))
	}
}

// Rule: the user comes from the events; disagreement is flagged, not merged.
func TestRuleUserMismatchFlagged(t *testing.T) {
	tests := []struct {
		name      string
		facts     []aggregate.StageRecorded
		wantUser  string
		wantFlag  bool
		wantUsers int
	}{
		{"agree", []aggregate.StageRecorded{fact(aggregate.StageUploaded, "h1", "u1"), award("h2", "u1", "1", "t", nil)}, "u1", false, 1},
		{"award wins", []aggregate.StageRecorded{fact(aggregate.StageUploaded, "h1", "u2"), award("h2", "u1", "1", "t", nil)}, "u1", true, 2},
		{"upload over later stages", []aggregate.StageRecorded{fact(aggregate.StageScored, "h1", "u3"), fact(aggregate.StageUploaded, "h2", "u2")}, "u2", true, 2},
		{"no user named", []aggregate.StageRecorded{fact(aggregate.StageExtracted, "h1", "")}, "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := view(t, tt.facts...)
			if v.UserID != tt.wantUser || hasAnomaly(v, aggregate.AnomalyUserMismatch) != tt.wantFlag || len(v.UserIDs) != tt.wantUsers {
				t.Errorf("user %q users %v anomalies %+v", v.UserID, v.UserIDs, v.Anomalies)
			}
		})
	}
}

// Rule: of out-of-order snapshots, the one with the greatest
// (numOfTransactions, lifetimePoints) is reported.
func TestRuleNewestSnapshotWins(t *testing.T) {
	s37 := &aggregate.Snapshot{AvailablePoints: dec("1582.26"), LifetimePoints: dec("1582.26"), NumTransactions: 37}
	s38 := &aggregate.Snapshot{AvailablePoints: dec("1656.54"), LifetimePoints: dec("1656.54"), NumTransactions: 38}
	v := view(t, award("b", "u1", "74.28", "t", s38), award("a", "u1", "74.28", "t", s37))
	if v.Snapshot == nil || v.Snapshot.NumTransactions != 38 {
		t.Fatalf("snapshot = %+v", v.Snapshot)
	}
	if !s38.Newer(*s37) || s37.Newer(*s38) || s38.Newer(*s38) {
		t.Error("Newer is not a strict order")
	}
}

func TestAddRejectsForeignFacts(t *testing.T) {
	r := aggregate.NewReceipt("reewild", "r1")
	bad := []aggregate.StageRecorded{
		{Source: "reewild", ReceiptID: "r2", Stage: aggregate.StageUploaded, BodySHA256: "h"},
		{Source: "other", ReceiptID: "r1", Stage: aggregate.StageUploaded, BodySHA256: "h"},
		{Source: "reewild", ReceiptID: "r1", Stage: "PAID", BodySHA256: "h"},
		{Source: "reewild", ReceiptID: "r1", Stage: aggregate.StageUploaded},
	}
	for i, f := range bad {
		if _, err := r.Add(f); !errors.Is(err, aggregate.ErrBadEvent) {
			t.Errorf("case %d: err = %v, want ErrBadEvent", i, err)
		}
	}
}

func TestFactsRoundTrip(t *testing.T) {
	fs := []aggregate.StageRecorded{fact(aggregate.StageUploaded, "h1", "u1"), award("h2", "u1", "74.28", "tx1", nil), award("h3", "u1", "1.5", "tx2", nil)}
	r := aggregate.NewReceipt("reewild", "r1")
	for _, f := range fs {
		r.Add(f)
	}
	raw, err := json.Marshal(r.Facts())
	if err != nil {
		t.Fatal(err)
	}
	var back []aggregate.StageRecorded
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	r2 := aggregate.NewReceipt("reewild", "r1")
	for _, f := range back {
		r2.Add(f)
	}
	a, _ := json.Marshal(r.View())
	b, _ := json.Marshal(r2.View())
	if string(a) != string(b) {
		t.Fatalf("view changed through Facts round trip:\n%s\n%s", a, b)
	}
}

func TestTotalsExact(t *testing.T) {
	var tot aggregate.Totals
	views := []aggregate.ReceiptView{
		view(t, award("a", "u", "0.1", "t1", nil)),
		view(t, award("b", "u", "0.2", "t2", nil)),
		view(t, failed("c", "u", 1, "FAILED_UPLOAD")),
		view(t, fact(aggregate.StageUploaded, "d", "u")),
	}
	for _, v := range views {
		tot.Add(v, +1)
	}
	if !tot.Points.Equal(dec("0.3")) || tot.Completed != 2 || tot.Failed != 1 || tot.InProgress != 1 {
		t.Fatalf("totals = %+v", tot)
	}
	tot.Add(views[1], -1)
	if !tot.Points.Equal(dec("0.1")) || tot.Completed != 1 {
		t.Fatalf("after removal: %+v", tot)
	}
	// A million tenths sum to exactly 100000: no float drift.
	var big aggregate.Totals
	tenth := view(t, award("x", "u", "0.1", "t", nil))
	for range 1_000_000 {
		big.Add(tenth, +1)
	}
	if got := big.Points.String(); got != "100000" {
		t.Fatalf("sum of 1e6 × 0.1 = %s", got)
	}
}

func TestUserAggregate(t *testing.T) {
	u := aggregate.NewUser("reewild", "00B4N5")
	if v := u.View(); v.Enrolled {
		t.Fatal("enrolled before any fact")
	}
	e := aggregate.UserEnrolled{Source: "reewild", UserID: "00B4N5", Email: "a@example.com", EnrolledAt: ts("2025-11-21T15:00:45.1070976Z"), BodySHA256: "h1"}
	if ok, err := u.Add(e); !ok || err != nil {
		t.Fatalf("Add = %v, %v", ok, err)
	}
	if ok, _ := u.Add(e); ok {
		t.Fatal("identical enrolment added twice")
	}
	e2 := e
	e2.BodySHA256, e2.EnrolledAt = "h2", ts("2025-11-22T00:00:00Z")
	u.Add(e2)
	v := u.View()
	if !v.Enrolled || v.Corrections != 1 || !v.EnrolledAt.Equal(*e.EnrolledAt) {
		t.Fatalf("view = %+v", v)
	}
	if _, err := u.Add(aggregate.UserEnrolled{UserID: "other", BodySHA256: "h"}); !errors.Is(err, aggregate.ErrBadEvent) {
		t.Fatalf("foreign enrolment: %v", err)
	}
}

func ExampleReceipt() {
	r := aggregate.NewReceipt("reewild", "fb2cdc63")
	at := time.Date(2025, 10, 8, 11, 47, 0, 0, time.UTC)
	r.Add(aggregate.StageRecorded{ReceiptID: "fb2cdc63", UserID: "027KO2", Stage: aggregate.StageAwarded, BodySHA256: "b",
		Award: &aggregate.Award{Points: decimal.RequireFromString("74.28")}})
	r.Add(aggregate.StageRecorded{ReceiptID: "fb2cdc63", UserID: "027KO2", Stage: aggregate.StageExtracted, BodySHA256: "a", OccurredAt: &at})
	v := r.View()
	fmt.Println(v.Status, v.Points, v.UserID)
	for _, s := range v.Stages[:3] {
		fmt.Println(s.Stage, s.Reported)
	}
	// Output:
	// COMPLETED 74.28 027KO2
	// UPLOADED false
	// EXTRACTED true
	// ENRICHED false
}

// Issue 12 item 11: amounts outside the sanity bounds are kept as sent but
// flagged.
func TestRuleAmountsOutOfBoundsFlagged(t *testing.T) {
	tests := []struct {
		name   string
		change func(*aggregate.Award)
		flag   bool
	}{
		{"sane", func(*aggregate.Award) {}, false},
		{"zero", func(a *aggregate.Award) { a.Points = dec("0") }, false},
		{"at the bound", func(a *aggregate.Award) { a.Points = dec("10000000") }, false},
		{"negative points", func(a *aggregate.Award) { a.Points = dec("-5") }, true},
		{"absurd points", func(a *aggregate.Award) { a.Points = dec("10000000.01") }, true},
		{"negative bonus", func(a *aggregate.Award) { a.BonusPoints = dec("-1") }, true},
		{"negative health points", func(a *aggregate.Award) { a.HealthPoints = dec("-0.5") }, true},
		{"absurd CO2e", func(a *aggregate.Award) { a.CO2e = dec("1e12") }, true},
		{"negative green products", func(a *aggregate.Award) { a.GreenProducts = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := award("h", "u1", "74.28", "tx1", nil)
			tt.change(f.Award)
			v := view(t, f)
			if got := hasAnomaly(v, aggregate.AnomalyAmountOutOfBounds); got != tt.flag {
				t.Fatalf("amount anomaly = %v, want %v (%+v)", got, tt.flag, v.Anomalies)
			}
			if v.Status != aggregate.StatusCompleted || !v.Points.Equal(f.Award.Points) {
				t.Fatalf("status %s points %s: the amount must be kept as sent", v.Status, v.Points)
			}
		})
	}
	up := fact(aggregate.StageUploaded, "u", "u1")
	neg := dec("-12.50")
	up.Amount = &neg
	if v := view(t, up); !hasAnomaly(v, aggregate.AnomalyAmountOutOfBounds) {
		t.Errorf("negative receipt amount not flagged: %+v", v.Anomalies)
	}
}
