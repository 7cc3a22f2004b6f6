package datadir

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/projections"
)

func embedded(t *testing.T, dir string) config.Config {
	t.Helper()
	cfg := config.Config{DataDir: dir}
	if err := cfg.Load(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOpenOfflineRefusesAHeldDataDir: with the read models or the log held
// by another process (a server), the offline path says to ask that server
// instead, naming the command's RPC and REST route; once free, a rebuild
// (of all the read models or one) and an audit run.
func TestOpenOfflineRefusesAHeldDataDir(t *testing.T) {
	cfg := embedded(t, t.TempDir())
	views, err := projections.Open(filepath.Join(cfg.DataDir, "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = OpenOffline(cfg, "audit")
	if !errors.Is(err, ErrServerRunning) || !strings.Contains(err.Error(), "receiptd audit --server") || !strings.Contains(err.Error(), "GET /v1/audit") {
		t.Errorf("read models held: %v", err)
	}
	views.Close()

	store, err := bolt.Open(filepath.Join(cfg.DataDir, "events.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = OpenOffline(cfg, "rebuild")
	if !errors.Is(err, ErrServerRunning) || !strings.Contains(err.Error(), "AuditService/Rebuild") || !strings.Contains(err.Error(), "POST /v1/rebuild") {
		t.Errorf("log held: %v", err)
	}
	store.Close()

	ctx := context.Background()
	if _, err := Rebuild(ctx, cfg, ""); err != nil {
		t.Error(err)
	}
	if _, err := Rebuild(ctx, cfg, projections.Names()[0]); err != nil {
		t.Error(err)
	}
	if _, err := Rebuild(ctx, cfg, "nope"); err == nil || !strings.HasPrefix(err.Error(), "rebuild: ") {
		t.Errorf("an unknown read model: %v", err)
	}
	if rep, err := Audit(ctx, cfg, projections.AuditOptions{}); err != nil || !rep.Clean() {
		t.Errorf("audit: %+v %v", rep, err)
	}
}

// TestBackupAndRestore: an offline backup of a stopped server's log
// restores into an empty data dir, with the read models rebuilt; a data
// dir that is not empty is refused unless forced; a KurrentDB log is
// neither backed up nor restored here.
func TestBackupAndRestore(t *testing.T) {
	from := embedded(t, t.TempDir())
	s, err := OpenStore(from, from.Memory(false))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	file := filepath.Join(t.TempDir(), "log.backup")
	if _, err := BackupOffline(from, file); err != nil {
		t.Fatal(err)
	}
	to := embedded(t, t.TempDir())
	res, err := Restore(context.Background(), to, file, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.DataDir != to.DataDir || len(res.SHA256) != 64 || res.Took == "" {
		t.Errorf("restore: %+v", res)
	}
	if _, err := Restore(context.Background(), to, file, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("a data dir that is not empty: %v", err)
	}
	if res, err := Restore(context.Background(), to, file, true); err != nil || len(res.Replaced) == 0 {
		t.Errorf("--force: %+v %v", res, err)
	}

	kdb := config.Config{DataDir: t.TempDir(), Store: config.StoreConfig{Kind: "kurrentdb", URL: "esdb://127.0.0.1:1?tls=false"}}
	if _, err := BackupOffline(kdb, file); err == nil || !strings.Contains(err.Error(), "cluster's own backup") {
		t.Errorf("backup of a KurrentDB log: %v", err)
	}
	if _, err := Restore(context.Background(), kdb, file, false); err == nil || !strings.Contains(err.Error(), "cluster's own tools") {
		t.Errorf("restore of a KurrentDB log: %v", err)
	}
}

// TestStoreMmapBytes: the embedded store's map is 64 GiB, or twice the
// file when that is more.
func TestStoreMmapBytes(t *testing.T) {
	if got := storeMmapBytes(filepath.Join(t.TempDir(), "missing.db")); got != 64<<30 {
		t.Errorf("no file: %d", got)
	}
}
