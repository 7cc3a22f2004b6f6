package projections_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

// statsLog builds receipt events whose received time is given (through
// RecordedAt: the test log has no metadata).
type statsLog struct {
	log
}

func (l *statsLog) at(received time.Time, f aggregate.StageRecorded) {
	if f.Source == "" {
		f.Source = "reewild"
	}
	if f.BodySHA256 == "" {
		f.BodySHA256 = fmt.Sprintf("%s-%s-%d", f.ReceiptID, f.Stage, l.pos)
	}
	l.add(aggregate.TypeReceiptStageRecorded, f)
	l.events[len(l.events)-1].RecordedAt = received
}

func within(got, want time.Duration) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return d <= want/100+time.Millisecond
}

func TestStats(t *testing.T) {
	day1 := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	var l statsLog
	awarded := func(points, co2e string) *aggregate.Award {
		return &aggregate.Award{Points: decimal.RequireFromString(points), CO2e: decimal.RequireFromString(co2e)}
	}
	// a: provider times on both ends, 90 s, day 1.
	l.at(day1, aggregate.StageRecorded{ReceiptID: "a", Stage: aggregate.StageUploaded, OccurredAt: tp(day1)})
	l.at(day1.Add(time.Hour), aggregate.StageRecorded{ReceiptID: "a", Stage: aggregate.StageAwarded, OccurredAt: tp(day1.Add(90 * time.Second)), Award: awarded("10.5", "0.125")})
	// b: no provider times: received 30 s apart; failed at validation, day 1.
	l.at(day1, aggregate.StageRecorded{ReceiptID: "b", Stage: aggregate.StageUploaded})
	l.at(day1.Add(30*time.Second), aggregate.StageRecorded{ReceiptID: "b", Stage: aggregate.StageFailed, Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}})
	// c: awarded with no UPLOADED: no time, day 2.
	l.at(day2, aggregate.StageRecorded{ReceiptID: "c", Stage: aggregate.StageAwarded, Award: awarded("1", "0")})
	// d: in progress.
	l.at(day2, aggregate.StageRecorded{ReceiptID: "d", Stage: aggregate.StageExtracted})
	// e: failed, then awarded: one completed receipt, not a failure.
	l.at(day2, aggregate.StageRecorded{ReceiptID: "e", Stage: aggregate.StageFailed, Failure: &aggregate.Failure{Code: 1, Name: "FAILED_UPLOAD"}})
	l.at(day2, aggregate.StageRecorded{ReceiptID: "e", Stage: aggregate.StageAwarded, Award: awarded("2", "1")})
	// f: AWARDED first, UPLOADED after (out of order): its time appears.
	l.at(day2.Add(time.Minute), aggregate.StageRecorded{ReceiptID: "f", Stage: aggregate.StageAwarded, Award: awarded("0.5", "0.5")})
	l.at(day2.Add(2*time.Minute), aggregate.StageRecorded{ReceiptID: "f", Stage: aggregate.StageUploaded}) // received after, so 0 s
	// g: another source, day 1, failed without a failure stage.
	l.at(day1, aggregate.StageRecorded{Source: "other", ReceiptID: "g", Stage: aggregate.StageFailed})

	db := openDB(t)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := db.Stats(ctx, projections.StatsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if st.From != "2025-02-02" || st.To != "2026-02-02" || len(st.Sources) != 2 || st.Sources[0].Source != "other" || st.Sources[1].Source != "reewild" {
		t.Fatalf("stats range %s..%s sources %+v", st.From, st.To, st.Sources)
	}
	if st.Position.Commit != l.pos {
		t.Errorf("position %v", st.Position)
	}
	r := st.Sources[1]
	tot := r.Total
	if r.InProgress != 1 || tot.Completed != 4 || tot.Failed != 1 || tot.FailedByStage["FAILED_VALIDATE"] != 1 || len(tot.FailedByStage) != 1 {
		t.Errorf("reewild totals: in progress %d, %+v", r.InProgress, tot)
	}
	if tot.Points.String() != "14" || tot.CO2e.String() != "1.625" {
		t.Errorf("points %s co2e %s", tot.Points, tot.CO2e)
	}
	d := tot.TimeToTerminal
	if d.Count != 3 || d.Missing != 2 || d.ProviderTimed != 1 {
		t.Errorf("time to terminal %+v", d)
	}
	// Times: a 90 s, b 30 s, f 0 s; c and e have no UPLOADED.
	if !within(d.P50, 30*time.Second) {
		t.Errorf("p50 = %v, want ~30s", d.P50)
	}
	if !within(d.P99, 90*time.Second) || !within(d.P90, 90*time.Second) {
		t.Errorf("p90 %v p99 %v, want ~90s", d.P90, d.P99)
	}
	if len(r.Days) != 2 || r.Days[0].Day != "2026-02-01" || r.Days[0].Completed != 1 || r.Days[0].Failed != 1 || r.Days[1].Completed != 3 {
		t.Errorf("days %+v", r.Days)
	}
	if o := st.Sources[0].Total; o.Failed != 1 || o.FailedByStage["UNKNOWN"] != 1 {
		t.Errorf("other: %+v", o)
	}

	// One source, one day.
	st, err = db.Stats(ctx, projections.StatsQuery{Source: "reewild", From: "2026-02-02", To: "2026-02-02"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sources) != 1 || st.Sources[0].Total.Completed != 3 || st.Sources[0].Total.Failed != 0 || st.Sources[0].Total.TimeToTerminal.Count != 1 {
		t.Errorf("day 2: %+v", st.Sources)
	}
	// A source with no statistics answers zeros.
	if st, err := db.Stats(ctx, projections.StatsQuery{Source: "none", From: "2026-01-01"}); err != nil || len(st.Sources) != 1 || st.Sources[0].Total.Completed != 0 || st.To != "2026-01-01" {
		t.Errorf("unknown source: %+v %v", st, err)
	}
	for _, q := range []projections.StatsQuery{
		{From: "yesterday"},
		{To: "2026-13-01"},
		{From: "2026-02-02", To: "2026-02-01"},
		{From: "2024-01-01", To: "2026-01-01"},
	} {
		if _, err := db.Stats(ctx, q); !errors.Is(err, projections.ErrBadQuery) {
			t.Errorf("Stats(%+v) = %v, want ErrBadQuery", q, err)
		}
	}

	totals, err := db.StatsTotals(ctx)
	if err != nil || len(totals) != 2 || totals[1].Total.Completed != 4 || totals[1].InProgress != 1 {
		t.Errorf("StatsTotals = %+v, %v", totals, err)
	}
}

// TestStatsPercentiles: the histogram's percentiles are within 1% of the
// exact ones over a wide range of times.
func TestStatsPercentiles(t *testing.T) {
	var l statsLog
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var times []time.Duration
	for i := range 1000 {
		d := time.Duration(i*i) * time.Millisecond * 37 // 0 … ~10 h
		times = append(times, d)
		id := fmt.Sprint("p", i)
		l.at(day, aggregate.StageRecorded{ReceiptID: id, Stage: aggregate.StageUploaded, OccurredAt: tp(day)})
		l.at(day, aggregate.StageRecorded{ReceiptID: id, Stage: aggregate.StageAwarded, OccurredAt: tp(day.Add(d)), Award: &aggregate.Award{Points: decimal.NewFromInt(1)}})
	}
	db := openDB(t)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(context.Background(), projections.StatsQuery{Source: "reewild"})
	if err != nil {
		t.Fatal(err)
	}
	d := st.Sources[0].Total.TimeToTerminal
	for _, c := range []struct {
		got  time.Duration
		rank int // 1-based
	}{{d.P50, 500}, {d.P90, 900}, {d.P99, 990}} {
		if want := times[c.rank-1]; !within(c.got, want) {
			t.Errorf("rank %d: %v, want %v within 1%%", c.rank, c.got, want)
		}
	}
	if d.Count != 1000 || d.ProviderTimed != 1000 {
		t.Errorf("%+v", d)
	}
}
