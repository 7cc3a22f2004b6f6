package projections

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OverdueSweep counts the overdue receipts of every source periodically,
// at the time its clock gives, and exports the last counts as
//
//	receiptd_receipts_overdue{source}              receipts in progress past their source's retry window
//	receiptd_overdue_sweep_timestamp_seconds       when the last sweep ran (its clock)
//
// (register it with a prometheus.Registerer). The read models hold no
// clock reading: the sweep brings "now" (the same clock the API's reads
// are given), so a test drives it with a fake clock and calls Sweep.
type OverdueSweep struct {
	db     *DB
	now    func() time.Time
	after  func(source string) time.Duration
	logger *slog.Logger

	mu     sync.Mutex
	counts map[string]int64
	at     time.Time
}

var _ prometheus.Collector = (*OverdueSweep)(nil)

// NewOverdueSweep returns the sweep of db's receipts in progress: sources
// are the configured ones, which always have a series (0 until a sweep
// finds one overdue); now is the clock (time.Now in receiptd), after each
// source's retry window (zero or less: never overdue). A failed sweep is
// logged to logger (slog.Default() if nil) and keeps the previous counts.
func NewOverdueSweep(db *DB, sources []string, now func() time.Time, after func(source string) time.Duration, logger *slog.Logger) *OverdueSweep {
	if logger == nil {
		logger = slog.Default()
	}
	counts := make(map[string]int64, len(sources))
	for _, src := range sources {
		counts[src] = 0
	}
	return &OverdueSweep{db: db, now: now, after: after, logger: logger, counts: counts}
}

// Sweep counts the overdue receipts now, and returns the counts by source.
func (s *OverdueSweep) Sweep(ctx context.Context) (map[string]int64, error) {
	now := s.now()
	counts, err := s.db.OverdueCounts(ctx, now, s.after)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A configured source, or one whose receipts all finished, keeps its
	// series, at 0.
	for src := range s.counts {
		if _, ok := counts[src]; !ok {
			counts[src] = 0
		}
	}
	s.counts, s.at = counts, now
	return maps.Clone(counts), nil
}

// Run sweeps every period until ctx is done (and once at the start).
func (s *OverdueSweep) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("projections: overdue sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var (
	overdueDesc = prometheus.NewDesc("receiptd_receipts_overdue",
		"Receipts still in progress after their source's whole retry window (from their first recorded delivery), by source, at the last sweep.", []string{"source"}, nil)
	overdueSweepDesc = prometheus.NewDesc("receiptd_overdue_sweep_timestamp_seconds",
		"When the last overdue sweep counted (Unix seconds; 0 before the first).", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *OverdueSweep) Describe(ch chan<- *prometheus.Desc) {
	ch <- overdueDesc
	ch <- overdueSweepDesc
}

// Collect implements prometheus.Collector.
func (s *OverdueSweep) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for src, n := range s.counts {
		ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(n), src)
	}
	at := 0.0
	if !s.at.IsZero() {
		at = float64(s.at.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(overdueSweepDesc, prometheus.GaugeValue, at)
}
