package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
)

// headOnly is the log as the Collector sees it: only Head is called.
type headOnly struct {
	eventstore.Store
	head eventstore.Position
	err  error
}

func (h headOnly) Head(context.Context) (eventstore.Position, error) { return h.head, h.err }

// gather scrapes c and returns every sample as "name{labels} value".
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestCollector(t *testing.T) {
	db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, s := range []aggregate.Stage{aggregate.StageUploaded, aggregate.StageAwarded} {
		f := aggregate.StageRecorded{Source: "reewild", ReceiptID: "r1", UserID: "u1", Stage: s, BodySHA256: fmt.Sprint(i)}
		if s == aggregate.StageAwarded {
			f.Award = &aggregate.Award{Points: decimal.RequireFromString("74.28")}
		}
		data, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		pos := uint64(i + 1)
		if err := db.Apply([]eventstore.RecordedEvent{{
			Event:      aggregate.Event{ID: fmt.Sprint(pos), Type: aggregate.TypeReceiptStageRecorded, Data: data, Metadata: []byte(`{}`)},
			Stream:     aggregate.StreamID(aggregate.CategoryReceipt, "reewild", "r1"),
			Position:   eventstore.Position{Commit: pos, Prepare: pos},
			RecordedAt: at.Add(time.Duration(i) * time.Minute),
		}}); err != nil {
			t.Fatal(err)
		}
	}

	got := gather(t, projections.NewCollector(db, headOnly{head: eventstore.Position{Commit: 5, Prepare: 5}}, nil))
	for name, want := range map[string]float64{
		`receiptd_projection_checkpoint{}`:                                              2,
		`receiptd_projection_lag_events{}`:                                              3,
		`receiptd_pipeline_receipts{source="reewild",status="completed"}`:               1,
		`receiptd_pipeline_receipts{source="reewild",status="failed"}`:                  0,
		`receiptd_pipeline_receipts{source="reewild",status="in_progress"}`:             0,
		`receiptd_pipeline_points{source="reewild"}`:                                    74.28,
		`receiptd_pipeline_time_to_terminal_receipts{clock="missing",source="reewild"}`: 0,
		`receiptd_amount_anomalies{kind="receipt",source="reewild"}`:                    0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if len(got) < 10 {
		t.Errorf("only %d samples: %v", len(got), got)
	}

	// The log's head unknown: lag -1, the rest as before.
	got = gather(t, projections.NewCollector(db, headOnly{err: errors.New("down")}, nil))
	if got[`receiptd_projection_lag_events{}`] != -1 || got[`receiptd_pipeline_receipts{source="reewild",status="completed"}`] != 1 {
		t.Errorf("head unknown: %v", got)
	}
	// Caught up.
	got = gather(t, projections.NewCollector(db, headOnly{head: eventstore.Position{Commit: 2, Prepare: 2}}, nil))
	if got[`receiptd_projection_lag_events{}`] != 0 {
		t.Errorf("caught up: lag %v", got[`receiptd_projection_lag_events{}`])
	}
}
