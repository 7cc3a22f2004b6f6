package projections

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/eventstore"
)

// Collector exports the read models as Prometheus metrics, read at each
// scrape (register it with a prometheus.Registerer):
//
//	receiptd_projection_lag_events                       the log's head minus the checkpoint (-1 if the head cannot be read)
//	receiptd_projection_checkpoint                       the commit position of the last event applied
//	receiptd_pipeline_receipts{source,status}            completed, failed, in_progress
//	receiptd_pipeline_failures{source,failure_stage}
//	receiptd_pipeline_points{source}, receiptd_pipeline_co2e{source}
//	receiptd_pipeline_time_to_terminal_seconds{source,quantile}
//	receiptd_pipeline_time_to_terminal_receipts{source,clock}
//	receiptd_amount_anomalies{source,kind}
//
// The pipeline series are the all-time statistics of every source
// (DB.StatsTotals). They are gauges, not counters: a late or corrected
// fact can move a receipt from FAILED to COMPLETED, or change its points.
// Collector uses only the DB's exported methods.
type Collector struct {
	db     *DB
	log    eventstore.Store
	logger *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the Collector of db, which follows log; a failure
// to read the statistics at a scrape is logged to logger (slog.Default()
// if nil) and leaves their series out of that scrape.
func NewCollector(db *DB, log eventstore.Store, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.Default()
	}
	return &Collector{db: db, log: log, logger: logger}
}

var (
	lagDesc = prometheus.NewDesc("receiptd_projection_lag_events",
		"How far the read models are behind the log: head position minus the read models' checkpoint (events, on the embedded store).", nil, nil)
	checkpointDesc = prometheus.NewDesc("receiptd_projection_checkpoint",
		"Commit position of the last event applied to the read models.", nil, nil)
	statsReceiptsDesc = prometheus.NewDesc("receiptd_pipeline_receipts",
		"Receipts by source and status (completed, failed, in_progress), from the pipeline statistics read model.", []string{"source", "status"}, nil)
	statsFailuresDesc = prometheus.NewDesc("receiptd_pipeline_failures",
		"Failed receipts by source and failure stage as the provider sent it.", []string{"source", "failure_stage"}, nil)
	statsPointsDesc = prometheus.NewDesc("receiptd_pipeline_points",
		"Points awarded to completed receipts, by source (the exact sum is GET /v1/stats).", []string{"source"}, nil)
	statsCO2eDesc = prometheus.NewDesc("receiptd_pipeline_co2e",
		"CO2e of completed receipts, by source (the exact sum is GET /v1/stats).", []string{"source"}, nil)
	statsDurationDesc = prometheus.NewDesc("receiptd_pipeline_time_to_terminal_seconds",
		"Time from UPLOADED to the terminal stage over every terminal receipt with a known time, by source and quantile (within 0.8%).", []string{"source", "quantile"}, nil)
	statsAmountAnomaliesDesc = prometheus.NewDesc("receiptd_amount_anomalies",
		"Amounts outside the sanity bounds (negative, or points above 10,000,000), kept as sent and flagged: receipts whose view has an amount_out_of_bounds anomaly (kind receipt) and credits (kind credit), by source.", []string{"source", "kind"}, nil)
	statsTimedDesc = prometheus.NewDesc("receiptd_pipeline_time_to_terminal_receipts",
		"Terminal receipts by source and how their time to terminal is known: provider (timestamps), received (receiptd's clock) or missing (no UPLOADED).", []string{"source", "clock"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagDesc, checkpointDesc, statsReceiptsDesc, statsFailuresDesc, statsPointsDesc, statsCO2eDesc,
		statsDurationDesc, statsTimedDesc, statsAmountAnomaliesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cp := c.db.Checkpoint()
	gauge(checkpointDesc, float64(cp.Commit))
	gauge(lagDesc, c.lag(cp))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	totals, err := c.db.StatsTotals(ctx)
	if err != nil {
		c.logger.Warn("metrics: read the pipeline statistics", "err", err)
		return
	}
	for _, s := range totals {
		t := s.Total
		gauge(statsReceiptsDesc, float64(t.Completed), s.Source, "completed")
		gauge(statsReceiptsDesc, float64(t.Failed), s.Source, "failed")
		gauge(statsReceiptsDesc, float64(s.InProgress), s.Source, "in_progress")
		for stage, n := range t.FailedByStage {
			gauge(statsFailuresDesc, float64(n), s.Source, stage)
		}
		gauge(statsPointsDesc, t.Points.InexactFloat64(), s.Source)
		gauge(statsCO2eDesc, t.CO2e.InexactFloat64(), s.Source)
		d := t.TimeToTerminal
		gauge(statsTimedDesc, float64(d.ProviderTimed), s.Source, "provider")
		gauge(statsTimedDesc, float64(d.Count-d.ProviderTimed), s.Source, "received")
		gauge(statsTimedDesc, float64(d.Missing), s.Source, "missing")
		gauge(statsAmountAnomaliesDesc, float64(s.AmountAnomalies), s.Source, "receipt")
		gauge(statsAmountAnomaliesDesc, float64(s.CreditAnomalies), s.Source, "credit")
		if d.Count > 0 {
			gauge(statsDurationDesc, d.P50.Seconds(), s.Source, "0.5")
			gauge(statsDurationDesc, d.P90.Seconds(), s.Source, "0.9")
			gauge(statsDurationDesc, d.P99.Seconds(), s.Source, "0.99")
		}
	}
}

// lag is the log's head minus the checkpoint cp, 0 when caught up, -1 when
// the head cannot be read within a second.
func (c *Collector) lag(cp eventstore.Position) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	head, err := c.log.Head(ctx)
	if err != nil {
		return -1
	}
	if !cp.Less(head) {
		return 0
	}
	return float64(head.Commit - cp.Commit)
}
