package projections

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// The pipeline statistics projection counts receipts by outcome, failure
// stage, source and day, sums their points and CO2e, and keeps the
// distribution of their time from UPLOADED to terminal.
//
// # Which day, which time
//
// A terminal receipt counts on the day (UTC) it became terminal: the
// provider's timestamp of its terminal stage (AWARDED if it was awarded,
// else FAILED) where the provider gave one, else when receiptd first
// received that stage. Its time to terminal is measured on one clock: the
// providers' timestamps of UPLOADED and the terminal stage when both were
// given, else the times receiptd first received each (the earliest
// received_at among a stage's events). A receipt whose UPLOADED was never
// reported has no time to terminal (counted as missing). A negative time
// (a provider clock running backwards) counts as zero.
//
// Everything is a function of the log: a late fact (UPLOADED arriving after
// AWARDED, a FAILED receipt later AWARDED, a corrected award) moves the
// receipt's contribution exactly, because each receipt's current
// contribution is stored (bucketStatsReceipts) and replaced, never
// re-derived from counters.
//
// # Percentiles
//
// Times are kept in a log-linear histogram of milliseconds (HDR-style: 64
// sub-buckets per power of two), one per source and day. Counts are exact,
// a contribution is removed exactly, histograms of several days or sources
// merge by adding counts, and each stores at most a few hundred counters
// however many receipts it counts. A percentile is the midpoint of the
// bucket holding the rank-th time (rank = ceil(p × count)), so it is exact
// below 128 ms and within 0.8 % above. Everything is integer arithmetic, so
// a rebuild yields the same bytes. Exact percentiles would need every
// duration stored and scanned per query, unbounded in the number of
// receipts; this bound is what lets a year of days answer from memory.

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
)

// histIndex returns the histogram bucket of a duration of v milliseconds.
func histIndex(v int64) int32 {
	if v < 2*histSub {
		return int32(max(v, 0))
	}
	s := bits.Len64(uint64(v)) - (histSubBits + 1)
	return int32(s*histSub) + int32(v>>s)
}

// histValue returns the midpoint, in milliseconds, of bucket i.
func histValue(i int32) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	s := int(i)/histSub - 1
	m := int64(i) - int64(s*histSub)
	lo, hi := m<<s, (m+1)<<s-1
	return lo + (hi-lo)/2
}

// statsContribution is what one receipt adds to the statistics now.
type statsContribution struct {
	Status aggregate.ReceiptStatus `json:"status"`
	// Day is the terminal day, "2006-01-02" (terminal receipts only).
	Day          string          `json:"day,omitempty"`
	FailureStage string          `json:"failure_stage,omitempty"`
	Points       decimal.Decimal `json:"points"`
	CO2e         decimal.Decimal `json:"co2e"`
	// DurationMS is the time to terminal; nil if not known.
	DurationMS    *int64 `json:"duration_ms,omitempty"`
	ProviderTimed bool   `json:"provider_timed,omitempty"`
	// AmountAnomaly: the view flags an amount outside the sanity bounds.
	AmountAnomaly bool `json:"amount_anomaly,omitempty"`
}

// statsReceipt is a receipt's record in bucketStatsReceipts.
type statsReceipt struct {
	// Received is when receiptd first received each stage.
	Received map[aggregate.Stage]time.Time `json:"received"`
	Counted  *statsContribution            `json:"counted,omitempty"`
}

// statsAgg is the statistics of a set of receipts (a source's day, or all
// of a source's receipts).
type statsAgg struct {
	Completed     int64            `json:"completed"`
	Failed        int64            `json:"failed"`
	InProgress    int64            `json:"in_progress,omitempty"`
	FailedByStage map[string]int64 `json:"failed_by_stage,omitempty"`
	Points        decimal.Decimal  `json:"points"`
	CO2e          decimal.Decimal  `json:"co2e"`
	// Durations counts times to terminal by histogram bucket.
	Durations     map[int32]int64 `json:"durations,omitempty"`
	ProviderTimed int64           `json:"provider_timed,omitempty"`
	NoDuration    int64           `json:"no_duration,omitempty"`
	// AmountAnomalies counts the receipts whose view flags an amount
	// outside the sanity bounds, whatever their status; CreditAnomalies the
	// credits of the source whose points are outside them (totals only).
	AmountAnomalies int64 `json:"amount_anomalies,omitempty"`
	CreditAnomalies int64 `json:"credit_anomalies,omitempty"`
}

func newStatsAgg() statsAgg { return statsAgg{Points: decimal.Zero, CO2e: decimal.Zero} }

func (s *statsAgg) empty() bool {
	return s.Completed == 0 && s.Failed == 0 && s.InProgress == 0 && s.CreditAnomalies == 0
}

// add adds c (sign +1) or removes it (sign -1). Counters that reach zero
// are deleted, so a set of receipts has one encoding.
func (s *statsAgg) add(c statsContribution, sign int64) {
	bump := func(m *map[string]int64, k string) {
		if *m == nil {
			*m = map[string]int64{}
		}
		if (*m)[k] += sign; (*m)[k] == 0 {
			delete(*m, k)
		}
	}
	if c.AmountAnomaly {
		s.AmountAnomalies += sign
	}
	switch c.Status {
	case aggregate.StatusCompleted:
		s.Completed += sign
		d := decimal.NewFromInt(sign)
		s.Points = s.Points.Add(c.Points.Mul(d))
		s.CO2e = s.CO2e.Add(c.CO2e.Mul(d))
	case aggregate.StatusFailed:
		s.Failed += sign
		bump(&s.FailedByStage, c.FailureStage)
	default:
		s.InProgress += sign
		return
	}
	if c.DurationMS == nil {
		s.NoDuration += sign
		return
	}
	if s.Durations == nil {
		s.Durations = map[int32]int64{}
	}
	i := histIndex(*c.DurationMS)
	if s.Durations[i] += sign; s.Durations[i] == 0 {
		delete(s.Durations, i)
	}
	if c.ProviderTimed {
		s.ProviderTimed += sign
	}
}

// merge adds every count of t to s.
func (s *statsAgg) merge(t statsAgg) {
	s.Completed += t.Completed
	s.Failed += t.Failed
	s.InProgress += t.InProgress
	s.Points = s.Points.Add(t.Points)
	s.CO2e = s.CO2e.Add(t.CO2e)
	s.ProviderTimed += t.ProviderTimed
	s.NoDuration += t.NoDuration
	s.AmountAnomalies += t.AmountAnomalies
	s.CreditAnomalies += t.CreditAnomalies
	for k, n := range t.FailedByStage {
		if s.FailedByStage == nil {
			s.FailedByStage = map[string]int64{}
		}
		s.FailedByStage[k] += n
	}
	for k, n := range t.Durations {
		if s.Durations == nil {
			s.Durations = map[int32]int64{}
		}
		s.Durations[k] += n
	}
}

// receivedAt is when receiptd received an event: its metadata's
// received_at, or the store's RecordedAt for an event without one.
func receivedAt(e eventstore.RecordedEvent, d *decodedEvent) time.Time {
	if d.metaErr == nil && !d.meta.ReceivedAt.IsZero() {
		return d.meta.ReceivedAt
	}
	return e.RecordedAt
}

// contribution computes what a receipt view adds to the statistics, given
// when its stages were first received (set for its reported stages).
func contribution(v *aggregate.ReceiptView, received *[numStages]time.Time) statsContribution {
	c := statsContribution{Status: v.Status, Points: decimal.Zero, CO2e: decimal.Zero, AmountAnomaly: v.HasAmountAnomaly()}
	var terminal int
	switch v.Status {
	case aggregate.StatusCompleted:
		terminal = stageAwarded
		c.Points, c.CO2e = v.Points, v.CO2e
	case aggregate.StatusFailed:
		terminal = stageFailed
		c.FailureStage = "UNKNOWN"
		if v.Failure != nil && v.Failure.Name != "" {
			c.FailureStage = v.Failure.Name
		}
	default:
		return c
	}
	// v.Stages lists every stage in aggregate.Stages order.
	provider := func(i int) *time.Time {
		if i < len(v.Stages) && v.Stages[i].Reported {
			return v.Stages[i].OccurredAt
		}
		return nil
	}
	endAt, endByProvider := received[terminal], false
	if t := provider(terminal); t != nil {
		endAt, endByProvider = *t, true
	}
	c.Day = endAt.UTC().Format(time.DateOnly)

	var from, to time.Time
	upProvider := provider(stageUploaded)
	upSeen := stageUploaded < len(v.Stages) && v.Stages[stageUploaded].Reported
	switch {
	case upProvider != nil && endByProvider:
		from, to, c.ProviderTimed = *upProvider, endAt, true
	case upSeen:
		from, to = received[stageUploaded], received[terminal]
	default:
		return c
	}
	ms := max(to.Sub(from).Milliseconds(), 0)
	c.DurationMS = &ms
	return c
}

// Indexes in aggregate.Stages.
const (
	stageUploaded = 0
	stageAwarded  = 5
	stageFailed   = 6
)

// receiptStats updates the statistics for a changed receipt: its
// contribution, if it changed.
func (a *applier) receiptStats(source string, re *receiptEntry) error {
	c := contribution(&re.view, &re.received)
	if re.counted.Status != "" && sameContribution(&re.counted, &c) {
		return nil
	}
	if re.counted.Status != "" {
		if err := a.statsAdd(source, re.counted, -1); err != nil {
			return err
		}
	}
	if err := a.statsAdd(source, c, +1); err != nil {
		return err
	}
	re.counted = c
	return nil
}

// sameContribution reports whether two contributions encode alike.
func sameContribution(a, b *statsContribution) bool {
	return a.Status == b.Status && a.Day == b.Day && a.FailureStage == b.FailureStage &&
		a.ProviderTimed == b.ProviderTimed && a.AmountAnomaly == b.AmountAnomaly &&
		(a.DurationMS == nil) == (b.DurationMS == nil) && (a.DurationMS == nil || *a.DurationMS == *b.DurationMS) &&
		a.Points.Equal(b.Points) && a.CO2e.Equal(b.CO2e)
}

// statsAdd adds (or removes) a contribution to its source's totals and,
// for a terminal receipt, to its day, in the cache: a batch decodes and
// encodes each record once, not once per event.
func (a *applier) statsAdd(source string, c statsContribution, sign int64) error {
	agg, err := a.statsRecord(bucketStatsTotals, []byte(source))
	if err != nil {
		return err
	}
	agg.add(c, sign)
	if c.Day == "" {
		return nil
	}
	if agg, err = a.statsRecord(bucketStatsDays, key(source, c.Day)); err != nil {
		return err
	}
	agg.add(c, sign)
	return nil
}

// MaxStatsDays is the longest range of days Stats answers for.
const MaxStatsDays = 366

// StatsQuery selects the statistics Stats returns.
type StatsQuery struct {
	// Source selects one source; empty selects every source with
	// statistics.
	Source string
	// From and To are the first and last day ("2006-01-02", UTC) of the
	// range, inclusive. An empty To is the latest day with a terminal
	// receipt of the selected sources; an empty From is MaxStatsDays-1
	// days before To. A range longer than MaxStatsDays, or From after To,
	// is ErrBadQuery.
	From, To string
	// Overdue, if not nil, has the answer count each source's overdue
	// receipts (SourceStats.Overdue).
	Overdue *OverdueQuery
}

// OverdueQuery asks for the receipts in progress first recorded more than
// their source's retry window (After) before Now: the reader's clock, as
// the read models hold no clock reading.
type OverdueQuery struct {
	Now   time.Time
	After func(source string) time.Duration
}

// DurationStats is the distribution of the time from UPLOADED to terminal
// of a set of receipts (see the package's statistics notes for the clock
// and the precision).
type DurationStats struct {
	// Count is the number of terminal receipts with a known time;
	// ProviderTimed of them were measured on the providers' timestamps,
	// the rest on receiptd's received times. Missing counts the terminal
	// receipts whose UPLOADED was never reported.
	Count, ProviderTimed, Missing int64
	// P50, P90 and P99 are zero when Count is.
	P50, P90, P99 time.Duration
}

// PipelineStats is the statistics of a set of receipts.
type PipelineStats struct {
	Completed int64
	Failed    int64
	// FailedByStage counts the failed receipts by failure stage name as
	// the provider sent it ("FAILED_VALIDATE"; "UNKNOWN" if it sent none).
	FailedByStage map[string]int64
	// Points and CO2e are the exact sums over the completed receipts.
	Points, CO2e   decimal.Decimal
	TimeToTerminal DurationStats
}

// DayStats is the statistics of the receipts that became terminal on Day.
type DayStats struct {
	Day string
	PipelineStats
}

// SourceStats is the statistics of one source.
type SourceStats struct {
	Source string
	// InProgress is the number of the source's receipts not yet terminal,
	// now (it does not depend on the range).
	InProgress int64
	// Overdue is how many of those are overdue at StatsQuery.Now (0
	// without StatsQuery.OverdueAfter).
	Overdue int64
	// Total is over the range; Days lists the days of the range that have
	// terminal receipts, oldest first.
	Total PipelineStats
	Days  []DayStats
}

// Stats is the answer of DB.Stats.
type Stats struct {
	// Position is the checkpoint the statistics are as of.
	Position eventstore.Position
	// From and To are the range answered, resolved ("" if no source has a
	// terminal receipt and the query named no day).
	From, To string
	Sources  []SourceStats
}

func (s statsAgg) pipeline() PipelineStats {
	p := PipelineStats{
		Completed: s.Completed, Failed: s.Failed, FailedByStage: maps.Clone(s.FailedByStage),
		Points: s.Points, CO2e: s.CO2e,
	}
	if p.FailedByStage == nil {
		p.FailedByStage = map[string]int64{}
	}
	d := &p.TimeToTerminal
	d.ProviderTimed, d.Missing = s.ProviderTimed, s.NoDuration
	idx := slices.Sorted(maps.Keys(s.Durations))
	for _, i := range idx {
		d.Count += s.Durations[i]
	}
	quantile := func(perMille int64) time.Duration {
		rank := (perMille*d.Count + 999) / 1000
		var seen int64
		for _, i := range idx {
			if seen += s.Durations[i]; seen >= rank {
				return time.Duration(histValue(i)) * time.Millisecond
			}
		}
		return 0
	}
	if d.Count > 0 {
		d.P50, d.P90, d.P99 = quantile(500), quantile(900), quantile(990)
	}
	return p
}

// Stats returns the pipeline statistics of q's sources over q's range of
// days.
func (d *DB) Stats(_ context.Context, q StatsQuery) (Stats, error) {
	from, to, err := parseRange(q.From, q.To)
	if err != nil {
		return Stats{}, fmt.Errorf("projections: stats: %w", err)
	}
	var out Stats
	err = d.view(func(tx *bolt.Tx) error {
		out.Position = decodePosition(tx.Bucket(bucketMeta).Get(keyCheckpoint))
		totals, days := tx.Bucket(bucketStatsTotals), tx.Bucket(bucketStatsDays)
		var sources []string
		if q.Source != "" {
			sources = []string{q.Source}
		} else {
			if err := totals.ForEach(func(k, _ []byte) error {
				sources = append(sources, string(k))
				return nil
			}); err != nil {
				return err
			}
		}
		if to.IsZero() { // the latest day with a terminal receipt
			for _, src := range sources {
				prefix := append([]byte(src), 0)
				c := days.Cursor()
				k, _ := c.Seek(prefixEnd(prefix))
				if k == nil {
					k, _ = c.Last()
				} else {
					k, _ = c.Prev()
				}
				if k != nil && bytes.HasPrefix(k, prefix) {
					if t, err := time.Parse(time.DateOnly, string(k[len(prefix):])); err == nil && t.After(to) {
						to = t
					}
				}
			}
			if !from.IsZero() {
				// Not before From, and not more than MaxStatsDays after it.
				if to.Before(from) {
					to = from
				}
				if last := from.AddDate(0, 0, MaxStatsDays-1); to.After(last) {
					to = last
				}
			}
		}
		if !to.IsZero() {
			if from.IsZero() {
				from = to.AddDate(0, 0, -(MaxStatsDays - 1))
			}
			out.From, out.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
		}
		for _, src := range sources {
			ss := SourceStats{Source: src}
			all := newStatsAgg()
			if raw := totals.Get([]byte(src)); raw != nil {
				var err error
				if all, err = decodeStatsAgg(raw); err != nil {
					return fmt.Errorf("totals of %s: %w", src, err)
				}
			}
			ss.InProgress = all.InProgress
			if o := q.Overdue; o != nil && o.After != nil {
				ss.Overdue = countOverdue(tx, src, o.Now, o.After(src))
			}
			sum := newStatsAgg()
			if out.From != "" {
				prefix := append([]byte(src), 0)
				c := days.Cursor()
				end := key(src, out.To)
				for k, v := c.Seek(key(src, out.From)); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) <= 0; k, v = c.Next() {
					day, err := decodeStatsAgg(v)
					if err != nil {
						return fmt.Errorf("stats day %q: %w", k, err)
					}
					sum.merge(day)
					ss.Days = append(ss.Days, DayStats{Day: string(k[len(prefix):]), PipelineStats: day.pipeline()})
				}
			}
			ss.Total = sum.pipeline()
			out.Sources = append(out.Sources, ss)
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("projections: stats: %w", err)
	}
	return out, nil
}

// parseRange parses a query's days; zero times for empty ones.
func parseRange(from, to string) (time.Time, time.Time, error) {
	var f, t time.Time
	var err error
	if from != "" {
		if f, err = time.Parse(time.DateOnly, from); err != nil {
			return f, t, fmt.Errorf("from %q is not a day (2006-01-02): %w", from, ErrBadQuery)
		}
	}
	if to != "" {
		if t, err = time.Parse(time.DateOnly, to); err != nil {
			return f, t, fmt.Errorf("to %q is not a day (2006-01-02): %w", to, ErrBadQuery)
		}
	}
	if !f.IsZero() && !t.IsZero() {
		if f.After(t) {
			return f, t, fmt.Errorf("from %s is after to %s: %w", from, to, ErrBadQuery)
		}
		if t.Sub(f) >= MaxStatsDays*24*time.Hour {
			return f, t, fmt.Errorf("%s to %s is more than %d days: %w", from, to, MaxStatsDays, ErrBadQuery)
		}
	}
	return f, t, nil
}

// SourceTotals is the statistics of every receipt of a source, for
// metrics: Total over all days.
type SourceTotals struct {
	Source     string
	InProgress int64
	Total      PipelineStats
	// AmountAnomalies counts the source's receipts whose view flags an
	// amount outside the sanity bounds (aggregate.AnomalyAmountOutOfBounds);
	// CreditAnomalies its credits whose points are outside them. Both are
	// kept as sent and counted in the balances.
	AmountAnomalies, CreditAnomalies int64
}

// StatsTotals returns the all-time statistics of every source.
func (d *DB) StatsTotals(_ context.Context) ([]SourceTotals, error) {
	var out []SourceTotals
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStatsTotals).ForEach(func(k, v []byte) error {
			agg, err := decodeStatsAgg(v)
			if err != nil {
				return fmt.Errorf("totals of %q: %w", k, err)
			}
			out = append(out, SourceTotals{
				Source: string(k), InProgress: agg.InProgress, Total: agg.pipeline(),
				AmountAnomalies: agg.AmountAnomalies, CreditAnomalies: agg.CreditAnomalies,
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("projections: stats totals: %w", err)
	}
	return out, nil
}
