package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

// auditMetrics is the Auditor the AuditService runs, exporting what the
// server's last audit found (deploy/prometheus/alerts.yaml pages on them):
//
//	receiptd_audit_last_run_timestamp_seconds  when the last audit finished (0: none since the start)
//	receiptd_audit_models_differing            read models that differed from their rebuild (0 after a full rebuild)
//	receiptd_audit_unreconciled_users          users whose reported balance disagrees with the derived one (audits of every source)
//
// An audit runs only when asked (`receiptd audit --server`, GET /v1/audit,
// the console; deploy/systemd has a daily timer), so these are as fresh as
// the last one. Offline audits (no server) do not reach them.
type auditMetrics struct {
	api.Auditor
	lastRun, differing, unreconciled prometheus.Gauge
}

func newAuditMetrics(a api.Auditor, reg prometheus.Registerer) *auditMetrics {
	m := &auditMetrics{
		Auditor: a,
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

// Audit implements api.Auditor.
func (m *auditMetrics) Audit(ctx context.Context, opts projections.AuditOptions) (projections.AuditReport, error) {
	rep, err := m.Auditor.Audit(ctx, opts)
	if err != nil {
		return rep, err
	}
	differ := 0
	for _, c := range rep.Models {
		if !c.Matches {
			differ++
		}
	}
	m.differing.Set(float64(differ))
	if opts.Source == "" {
		m.unreconciled.Set(float64(rep.UnreconciledTotal))
	}
	m.lastRun.Set(float64(time.Now().UnixNano()) / 1e9)
	return rep, nil
}

// Rebuild implements api.Auditor.
func (m *auditMetrics) Rebuild(ctx context.Context, opts projections.RebuildOptions) (projections.RebuildResult, error) {
	res, err := m.Auditor.Rebuild(ctx, opts)
	if err == nil && opts.Projection == "" {
		m.differing.Set(0)
	}
	return res, err
}
