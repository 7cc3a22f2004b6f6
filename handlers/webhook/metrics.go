package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingest handler's Prometheus collectors:
//
//	receiptd_webhook_deliveries_total{source,outcome}  counter
//	receiptd_webhook_ingest_seconds{source}            histogram
//
// outcome is one of accepted, duplicate, quarantined, bad_signature,
// malformed, conflict, too_large, unsupported_media_type, store_unavailable,
// method_not_allowed, rate_limited, internal_error, and unknown_source (counted with an
// empty source label, so that probing random paths cannot grow the series).
// The histogram times every delivery to a configured source, from the
// request reaching the handler to the answer being written.
//
// One Metrics may serve several Handlers; a nil *Metrics records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	ingest     *prometheus.HistogramVec
}

// ingestBuckets span 0.1 ms (a duplicate answered from a warm store) to 5 s
// (the providers' own timeout), roughly ×2.5 apart.
var ingestBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
}

// NewMetrics creates the collectors and registers them with reg (if reg is
// not nil). Like promauto, it panics if reg already holds collectors of the
// same names: that is a wiring mistake, found at start-up.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "receiptd",
			Subsystem: "webhook",
			Name:      "deliveries_total",
			Help:      "Webhook deliveries received, by source and outcome.",
		}, []string{"source", "outcome"}),
		ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "receiptd",
			Subsystem: "webhook",
			Name:      "ingest_seconds",
			Help:      "Time to answer a webhook delivery (limit, verify, decode, decide, durable append), by source.",
			Buckets:   ingestBuckets,
		}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.ingest)
	}
	return m
}

// sourceMetrics are one source's series, resolved once so that counting a
// delivery is a lock-free add.
type sourceMetrics struct {
	deliveries [numOutcomes]prometheus.Counter
	ingest     prometheus.Observer
}

// forSource resolves (and so exports, at zero) every series of source.
func (m *Metrics) forSource(source string) *sourceMetrics {
	if m == nil {
		return nil
	}
	sm := &sourceMetrics{ingest: m.ingest.WithLabelValues(source)}
	for o := range numOutcomes {
		if o == outcomeUnknownSource {
			continue
		}
		sm.deliveries[o] = m.deliveries.WithLabelValues(source, o.info().label)
	}
	return sm
}

// unknownSource is the counter of deliveries to a source not configured.
func (m *Metrics) unknownSource() prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.deliveries.WithLabelValues("", outcomeUnknownSource.info().label)
}

// Collector returns the Prometheus collector of the Handler's decision
// cache (see Options.DecisionCacheBytes), for the caller to register:
//
//	receiptd_webhook_decision_cache_bytes                 gauge    estimated heap bytes of the states held
//	receiptd_webhook_decision_cache_streams               gauge    streams held (or in use)
//	receiptd_webhook_decision_cache_lookups_total{result} counter  hit, miss (read the stream), stale (caught up)
//	receiptd_webhook_decision_cache_evictions_total       counter  states dropped for the budget
//
// A high miss rate with evictions means the budget is below the working set
// of hot streams; stale lookups count the times another node on the same
// log had written to a stream first.
func (h *Handler) Collector() prometheus.Collector {
	return &decisionCollector{d: h.decisions}
}

var (
	descDecisionBytes = prometheus.NewDesc("receiptd_webhook_decision_cache_bytes",
		"Estimated heap bytes of the decision states the ingest handler holds.", nil, nil)
	descDecisionStreams = prometheus.NewDesc("receiptd_webhook_decision_cache_streams",
		"Streams whose decision state the ingest handler holds (or which are in use).", nil, nil)
	descDecisionLookups = prometheus.NewDesc("receiptd_webhook_decision_cache_lookups_total",
		"Decisions by where the stream's state came from: hit (the cache), miss (a read of the stream), stale (caught up after another writer).", []string{"result"}, nil)
	descDecisionEvictions = prometheus.NewDesc("receiptd_webhook_decision_cache_evictions_total",
		"Decision states dropped to stay within the budget.", nil, nil)
)

// decisionCollector reads a decision cache's figures at scrape time.
type decisionCollector struct{ d *decisions }

func (c *decisionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDecisionBytes
	ch <- descDecisionStreams
	ch <- descDecisionLookups
	ch <- descDecisionEvictions
}

func (c *decisionCollector) Collect(ch chan<- prometheus.Metric) {
	streams, bytes := c.d.cached()
	ch <- prometheus.MustNewConstMetric(descDecisionBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(descDecisionStreams, prometheus.GaugeValue, float64(streams))
	ch <- prometheus.MustNewConstMetric(descDecisionLookups, prometheus.CounterValue, float64(c.d.hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(descDecisionLookups, prometheus.CounterValue, float64(c.d.misses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(descDecisionLookups, prometheus.CounterValue, float64(c.d.stale.Load()), "stale")
	ch <- prometheus.MustNewConstMetric(descDecisionEvictions, prometheus.CounterValue, float64(c.d.evictions.Load()))
}
