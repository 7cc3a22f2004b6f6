package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditMetrics is an Admin that exports what the server's last audit
// found (deploy/prometheus/alerts.yaml pages on them):
//
//	receiptd_audit_last_run_timestamp_seconds  when the last audit finished (0: none since the start)
//	receiptd_audit_models_differing            read models that differed from their rebuild (0 after a full rebuild)
//	receiptd_audit_unreconciled_users          users whose reported balance disagrees with the derived one (audits of every source)
//
// An audit runs only when asked (`receiptd audit --server`, GET /v1/audit,
// the console; deploy/systemd has a daily timer), so these are as fresh as
// the last one. Offline audits (DB.Audit, no server) do not reach them.
type AuditMetrics struct {
	*Admin
	lastRun, differing, unreconciled prometheus.Gauge
}

// NewAuditMetrics returns a's AuditMetrics, its gauges registered with
// reg (which panics if they already are, as prometheus.MustRegister).
func NewAuditMetrics(a *Admin, reg prometheus.Registerer) *AuditMetrics {
	m := &AuditMetrics{
		Admin: a,
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "receiptd_audit_last_run_timestamp_seconds",
			Help: "When the server's last audit of the read models finished (Unix time; 0: none since the server started)."}),
		differing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "receiptd_audit_models_differing",
			Help: "Read models that differed from their rebuild from the log in the last audit (0 again after a full rebuild)."}),
		unreconciled: prometheus.NewGauge(prometheus.GaugeOpts{Name: "receiptd_audit_unreconciled_users",
			Help: "Users whose provider-reported balance disagreed with the derived one in the last audit of every source."}),
	}
	reg.MustRegister(m.lastRun, m.differing, m.unreconciled)
	return m
}

// Audit audits as Admin.Audit does and sets the gauges from its report.
func (m *AuditMetrics) Audit(ctx context.Context, opts AuditOptions) (AuditReport, error) {
	rep, err := m.Admin.Audit(ctx, opts)
	if err != nil {
		return rep, err
	}
	m.differing.Set(float64(rep.Differing()))
	if opts.Source == "" {
		m.unreconciled.Set(float64(rep.UnreconciledTotal))
	}
	m.lastRun.Set(float64(time.Now().UnixNano()) / 1e9)
	return rep, nil
}

// Rebuild rebuilds as Admin.Rebuild does; a full rebuild leaves no read
// model differing.
func (m *AuditMetrics) Rebuild(ctx context.Context, opts RebuildOptions) (RebuildResult, error) {
	res, err := m.Admin.Rebuild(ctx, opts)
	if err == nil && opts.Projection == "" {
		m.differing.Set(0)
	}
	return res, err
}
