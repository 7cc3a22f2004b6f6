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
// method_not_allowed, internal_error, and unknown_source (counted with an
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
