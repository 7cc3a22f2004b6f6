package feed

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// pusherCollector exports each destination's state as Prometheus metrics
// (the request latency histogram is observed by the pusher itself).
type pusherCollector struct{ p *Pusher }

var (
	descLagPositions = prometheus.NewDesc("receiptd_feed_destination_lag_positions",
		"Log positions between the feed position a destination was delivered up to and the feed's head (events, on the embedded store).", []string{"destination"}, nil)
	descLagSeconds = prometheus.NewDesc("receiptd_feed_destination_lag_seconds",
		"How long the event a destination is on has waited since the log recorded it; 0 when it is caught up.", []string{"destination"}, nil)
	descAttempts = prometheus.NewDesc("receiptd_feed_destination_attempts_total",
		"Requests sent to a destination.", []string{"destination"}, nil)
	descFailures = prometheus.NewDesc("receiptd_feed_destination_failures_total",
		"Requests to a destination that failed (not 2xx, or no answer).", []string{"destination"}, nil)
	descPaused = prometheus.NewDesc("receiptd_feed_destination_paused",
		"1 while a destination is paused (by an admin, or after too many failures in a row).", []string{"destination"}, nil)
	descDead = prometheus.NewDesc("receiptd_feed_destination_dead_letters",
		"Dead letters a destination holds.", []string{"destination"}, nil)
	descDelivered = prometheus.NewDesc("receiptd_feed_destination_delivered_position",
		"The feed position a destination was delivered up to.", []string{"destination"}, nil)
)

func (c pusherCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLagPositions, descLagSeconds, descAttempts, descFailures, descPaused, descDead, descDelivered} {
		ch <- d
	}
}

func (c pusherCollector) Collect(ch chan<- prometheus.Metric) {
	st, _ := c.p.Statuses(context.Background())
	for _, s := range st {
		paused := 0.0
		if s.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(descLagPositions, prometheus.GaugeValue, float64(s.LagPositions), s.Name)
		ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, s.Lag.Seconds(), s.Name)
		ch <- prometheus.MustNewConstMetric(descAttempts, prometheus.CounterValue, float64(s.Attempts), s.Name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Failures), s.Name)
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, paused, s.Name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(s.DeadLetters), s.Name)
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.GaugeValue, float64(s.Delivered), s.Name)
	}
}
