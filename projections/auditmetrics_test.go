package projections_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bbolt "go.etcd.io/bbolt"

	"github.com/receiptd/receiptd/projections"
)

// TestAuditMetrics: the gauges follow the server's audits: none before
// the first; the read models differing and the unreconciled users after
// one; the unreconciled users only from audits of every source; no read
// model differing after a full rebuild, and still one after rebuilding
// another read model.
func TestAuditMetrics(t *testing.T) {
	l := newLogStore(t)
	rng := rand.New(rand.NewPCG(3, 4))
	randomLog(l, rng, 40)
	path := filepath.Join(t.TempDir(), "views.db")
	db := openAt(t, path)
	feed(t, l, db, rng)
	db.Close()
	corrupt(t, path, func(tx *bbolt.Tx) error {
		_, err := projections.SetLastPosition(tx, "reewild", "r007", 1_000_000)
		return err
	})
	db = openAt(t, path)

	reg := prometheus.NewPedanticRegistry()
	m := projections.NewAuditMetrics(projections.NewAdmin(db, l.store), reg)
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 3 {
		t.Fatalf("%d metrics, %v; want the three gauges", len(mfs), err)
	}
	if gauge("receiptd_audit_last_run_timestamp_seconds") != 0 {
		t.Error("a last audit before any")
	}

	ctx := context.Background()
	before := float64(time.Now().Unix())
	rep, err := m.Audit(ctx, projections.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Differing() != 1 || rep.UnreconciledTotal == 0 {
		t.Fatalf("audit of the corrupted read models: %d differing, %d unreconciled", rep.Differing(), rep.UnreconciledTotal)
	}
	if got := gauge("receiptd_audit_models_differing"); got != 1 {
		t.Errorf("models differing %v, want 1", got)
	}
	if got := gauge("receiptd_audit_unreconciled_users"); got != float64(rep.UnreconciledTotal) {
		t.Errorf("unreconciled users %v, want %d", got, rep.UnreconciledTotal)
	}
	if last := gauge("receiptd_audit_last_run_timestamp_seconds"); last < before || last > float64(time.Now().Unix()+1) {
		t.Errorf("last run at %v, not during the audit (from %v)", last, before)
	}
	// An audit of one source leaves the unreconciled users of every source.
	unreconciled := gauge("receiptd_audit_unreconciled_users")
	if _, err := m.Audit(ctx, projections.AuditOptions{Source: "nobody"}); err != nil {
		t.Fatal(err)
	}
	if got := gauge("receiptd_audit_unreconciled_users"); got != unreconciled {
		t.Errorf("after an audit of one source: unreconciled users %v, want %v kept", got, unreconciled)
	}
	// Rebuilding another read model repairs nothing; a full rebuild does.
	if _, err := m.Rebuild(ctx, projections.RebuildOptions{Projection: "ledger"}); err != nil {
		t.Fatal(err)
	}
	if got := gauge("receiptd_audit_models_differing"); got != 1 {
		t.Errorf("after rebuilding the ledger: models differing %v, want 1", got)
	}
	if _, err := m.Rebuild(ctx, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := gauge("receiptd_audit_models_differing"); got != 0 {
		t.Errorf("after a full rebuild: models differing %v, want 0", got)
	}
}
