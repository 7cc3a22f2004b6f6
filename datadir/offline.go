package datadir

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/projections"
)

// ErrServerRunning: the offline path found the data in use by a server
// (backup.ErrServerRunning).
var ErrServerRunning = backup.ErrServerRunning

// OpenOffline opens the log and the read models directly, for a rebuild or
// an audit with no server running. The embedded store and the read-model
// file are locked by the server that has them open; then it says to ask
// that server instead (the online path).
func OpenOffline(cfg config.Config, command string) (eventstore.Store, *projections.DB, func(), error) {
	online := fmt.Sprintf("%s: %%w: %s online instead, through that server: `receiptd %s --server HOST:GRPC_PORT` (gRPC receiptd.v1.AuditService/%s) or %s",
		command, command, command, strings.ToUpper(command[:1])+command[1:], restRoute(command))
	// This process runs within the memory budget too (the rebuild
	// builds a second set of read models beside the live one).
	mem := cfg.Memory(false)
	mem.Apply(nil)
	// The read models first: every server, whatever its store, holds
	// them, and a short wait tells.
	path := filepath.Join(cfg.DataDir, "views.db")
	views, err := projections.Open(path, projections.WithLockTimeout(time.Second), projections.WithCacheBytes(mem.Records), projections.WithMappedLimit(mem.Mapped))
	if errors.Is(err, projections.ErrLocked) {
		return nil, nil, nil, fmt.Errorf(online, fmt.Errorf("the read models %s are %w", path, ErrServerRunning))
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", command, err)
	}
	store, err := OpenStore(cfg, mem)
	if errors.Is(err, bolt.ErrLocked) {
		views.Close()
		return nil, nil, nil, fmt.Errorf(online, fmt.Errorf("the embedded store under %s is %w", cfg.DataDir, ErrServerRunning))
	}
	if err != nil {
		views.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", command, err)
	}
	// Holding the read models' lock, no one else is rebuilding them: what
	// scratch files there are, a crash left behind.
	_ = projections.RemoveScratch(path)
	return store, views, func() { views.Close(); store.Close() }, nil
}

// Rebuild rebuilds the read models of a data directory no server holds
// (OpenOffline): all of them, or the one named projection, copied at the
// others' position once they are brought to the log's head, as a server
// would. Errors begin with "rebuild: ".
func Rebuild(ctx context.Context, cfg config.Config, projection string) (projections.RebuildResult, error) {
	store, views, closeAll, err := OpenOffline(cfg, "rebuild")
	if err != nil {
		return projections.RebuildResult{}, err
	}
	defer closeAll()
	if projection != "" {
		if err := projections.NewRunner(store, views, nil).CatchUp(ctx); err != nil {
			return projections.RebuildResult{}, fmt.Errorf("rebuild: catch the read models up to the log (rebuild them all if they cannot be): %w", err)
		}
	}
	res, err := views.Rebuild(ctx, store, projections.RebuildOptions{Projection: projection})
	if err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	return res, nil
}

// Audit audits the read models of a data directory no server holds
// (OpenOffline) against a rebuild from its log. Errors begin with
// "audit: ".
func Audit(ctx context.Context, cfg config.Config, opts projections.AuditOptions) (projections.AuditReport, error) {
	store, views, closeAll, err := OpenOffline(cfg, "audit")
	if err != nil {
		return projections.AuditReport{}, err
	}
	defer closeAll()
	rep, err := views.Audit(ctx, store, opts)
	if err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	return rep, nil
}

func restRoute(command string) string {
	if command == "rebuild" {
		return "POST /v1/rebuild"
	}
	return "GET /v1/audit"
}
