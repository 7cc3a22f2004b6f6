package feed_test

import (
	"slices"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	"github.com/shopspring/decimal"
)

// apply adds f to r and returns the feed events it caused.
func apply(t *testing.T, r *aggregate.Receipt, f aggregate.StageRecorded) []feed.Event {
	t.Helper()
	var prev *aggregate.ReceiptView
	if r.Len() > 0 {
		v := r.View()
		prev = &v
	}
	added, err := r.Add(f)
	if err != nil {
		t.Fatal(err)
	}
	if !added {
		return nil
	}
	next := r.View()
	return feed.ReceiptEvents(prev, &next, f.OccurredAt, time.Unix(1700000000, 0).UTC())
}

func kinds(evs []feed.Event) []string {
	var out []string
	for _, e := range evs {
		k := e.Kind
		if e.Stage != "" {
			k += ":" + string(e.Stage)
		}
		if len(e.Anomalies) > 0 {
			k += ":" + e.Anomalies[0].Kind
		}
		out = append(out, k)
	}
	return out
}

func TestReceiptEvents(t *testing.T) {
	r := aggregate.NewReceipt("reewild", "r1")
	stage := func(s aggregate.Stage, user, body string) aggregate.StageRecorded {
		f := aggregate.StageRecorded{Source: "reewild", ReceiptID: "r1", UserID: user, Stage: s, BodySHA256: body}
		switch s {
		case aggregate.StageAwarded:
			f.Award = &aggregate.Award{Points: decimal.RequireFromString("74.28")}
		case aggregate.StageFailed:
			f.Failure = &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}
		}
		return f
	}
	steps := []struct {
		f    aggregate.StageRecorded
		want []string
	}{
		{stage(aggregate.StageExtracted, "u1", "a"), []string{"receipt.progressed.v1:EXTRACTED"}},
		{stage(aggregate.StageExtracted, "u1", "a"), nil}, // the same fact again
		{stage(aggregate.StageExtracted, "u1", "b"), []string{"anomaly.detected.v1:correction"}},
		{stage(aggregate.StageExtracted, "u1", "c"), nil}, // a third body: the same anomaly, detail changed
		{stage(aggregate.StageFailed, "u1", "d"), []string{"receipt.progressed.v1:FAILED", "receipt.failed.v1"}},
		{stage(aggregate.StageAwarded, "u2", "e"), []string{"receipt.progressed.v1:AWARDED", "receipt.completed.v1",
			"anomaly.detected.v1:conflicting_terminal_events", "anomaly.detected.v1:user_mismatch"}},
		{stage(aggregate.StageAwarded, "u2", "f"), []string{"anomaly.detected.v1:correction"}}, // AWARDED corrected
		{stage(aggregate.StageUploaded, "u2", "g"), []string{"receipt.progressed.v1:UPLOADED"}},
	}
	ids := map[string]bool{}
	for i, s := range steps {
		evs := apply(t, r, s.f)
		if got := kinds(evs); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
		for _, e := range evs {
			if ids[e.ID] {
				t.Errorf("step %d: id %s twice", i, e.ID)
			}
			ids[e.ID] = true
			if e.ViewOf != feed.ViewReceipt || e.ReceiptID != "r1" || e.Source != "reewild" {
				t.Errorf("step %d: %+v", i, e)
			}
		}
		if i == 5 && !slices.Equal(evs[0].UserIDs, []string{"u2"}) {
			t.Errorf("awarded to u2: user ids %v", evs[0].UserIDs)
		}
	}
}

func TestEventIDs(t *testing.T) {
	a := feed.EventID(feed.KindReceiptCompleted, "reewild", "r1")
	if a != feed.EventID(feed.KindReceiptCompleted, "reewild", "r1") {
		t.Fatal("not a function of its inputs")
	}
	for _, other := range []string{
		feed.EventID(feed.KindReceiptFailed, "reewild", "r1"),
		feed.EventID(feed.KindReceiptCompleted, "reap", "r1"),
		feed.EventID(feed.KindReceiptCompleted, "reewild", "r2"),
		feed.EventID(feed.KindReceiptCompleted, "reewild", "r", "1"),
		feed.EventID(feed.KindReceiptCompleted, "reewild\x00r1"),
	} {
		if other == a {
			t.Errorf("%s: collides", other)
		}
	}
	if len(a) != 36 || a[:4] != "evt_" {
		t.Errorf("id %q", a)
	}
}

func TestPositions(t *testing.T) {
	evs := make([]feed.Event, 3)
	if err := feed.Number(42, evs); err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.LogPosition() != 42 || e.Position != feed.Pos(42, i) || e.Position > feed.HeadAt(42) || e.Position <= feed.HeadAt(41) {
			t.Errorf("event %d: position %d", i, e.Position)
		}
	}
	if err := feed.Number(1, make([]feed.Event, feed.MaxPerLogEvent+1)); err == nil {
		t.Error("more than MaxPerLogEvent numbered")
	}
	if err := feed.Number(feed.MaxLogPosition+1, evs); err == nil {
		t.Error("a log position past the range numbered")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	at := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	e := feed.BalanceChanged("reewild", "u1", 7, []byte(`{"user_id":"u1"}`), &at, at)
	e.Position = feed.Pos(7, 1)
	b, err := feed.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := feed.Unmarshal(e.Position, b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := feed.Marshal(got)
	if string(b) != string(b2) || got.Position != e.Position {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
	if _, err := feed.Unmarshal(1, []byte("{")); err == nil {
		t.Fatal("bad bytes decoded")
	}
}

// FuzzUnmarshal: a stored event's decoder never panics, and what it
// decodes encodes back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	at := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	for _, e := range []feed.Event{
		feed.BalanceChanged("reewild", "u1", 7, []byte(`{"user_id":"u1"}`), &at, at),
		feed.EntityChanged("reap", "user", "acc", "", 9, []byte(`{}`), nil, at),
	} {
		b, _ := feed.Marshal(e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := feed.Unmarshal(1, b)
		if err != nil {
			return
		}
		again, _ := feed.Marshal(e)
		if e2, err := feed.Unmarshal(1, again); err != nil || e2.ID != e.ID || e2.RecordedAt != e.RecordedAt {
			t.Fatalf("re-encoding %x: %v", b, err)
		}
	})
}
