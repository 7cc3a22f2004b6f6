package datadir

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/projections"
)

// RestoreResult is what Restore did (what `receiptd restore --json`
// prints).
type RestoreResult struct {
	DataDir  string                    `json:"data_dir"`
	Head     uint64                    `json:"head"`
	Bytes    uint64                    `json:"bytes"`
	TakenAt  time.Time                 `json:"taken_at"`
	SHA256   string                    `json:"sha256"`
	Rebuild  projections.RebuildResult `json:"rebuild"`
	Replaced []string                  `json:"replaced,omitempty"`
	Took     string                    `json:"took"`
}

// Restore restores the backup file from into cfg's data directory (the
// embedded store only): backup.Restore checks it and puts the log in
// place, then the read models are rebuilt from it within the memory
// budget. force replaces the log and read models of a data directory that
// is not empty.
func Restore(ctx context.Context, cfg config.Config, from string, force bool) (RestoreResult, error) {
	start := time.Now()
	if cfg.Store.Kind != "embedded" {
		return RestoreResult{}, fmt.Errorf("the configured log is in %s: restore it with the cluster's own tools (README, \"Operating receiptd\"); receiptd restores the embedded store only", cfg.Store.Kind)
	}
	dir := cfg.DataDir
	r, err := backup.Restore(ctx, from, dir, force)
	if errors.Is(err, backup.ErrNotEmpty) {
		return RestoreResult{}, fmt.Errorf("%w: restore into an empty one, or pass --force to replace its log and read models", err)
	}
	if err != nil {
		return RestoreResult{}, err
	}
	hdr := r.Header

	// The read models, rebuilt from it, within the memory budget.
	mem := cfg.Memory(false)
	mem.Apply(nil)
	store, err := OpenStore(cfg, mem)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("open the restored log: %w", err)
	}
	defer store.Close()
	views, err := projections.Open(filepath.Join(dir, "views.db"), projections.WithCacheBytes(mem.Records), projections.WithMappedLimit(mem.Mapped))
	if err != nil {
		return RestoreResult{}, err
	}
	defer views.Close()
	rb, err := views.Rebuild(ctx, store, projections.RebuildOptions{})
	if err != nil {
		return RestoreResult{}, fmt.Errorf("the log is restored; rebuilding the read models failed (a server started on %s builds them): %w", dir, err)
	}
	return RestoreResult{
		DataDir: dir, Head: hdr.Head, Bytes: hdr.Size, TakenAt: hdr.TakenAt, SHA256: hex.EncodeToString(hdr.Sum[:]),
		Rebuild: rb, Replaced: r.Replaced, Took: time.Since(start).Round(time.Millisecond).String(),
	}, nil
}
