package datadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/membudget"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// Reforget destroys again the keys the log's subject.forgotten.v1 events
// name: a key store restored from a backup older than a forget holds that
// subject's key again. It returns how many keys the log records as
// destroyed and how many of them were in the key store again.
func Reforget(ctx context.Context, cfg config.Config, mem membudget.Plan) (recorded, destroyed int, err error) {
	store, err := OpenStore(cfg, mem)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir)
	}
	defer store.Close()
	keyring, err := OpenKeyring(ctx, cfg, store, mem)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir)
	}
	defer keyring.Close()
	ids, err := privacy.ForgottenKeys(ctx, store)
	if err != nil {
		return 0, 0, err
	}
	gone, err := keyring.DestroyKeys(ctx, ids)
	if err != nil {
		return len(ids), 0, err
	}
	return len(ids), len(gone), nil
}

// SealResult is what Seal did.
type SealResult struct {
	webhook.LogSealStats
	// Rebuilt is the number of events the read models were rebuilt
	// from; Took the time the whole took.
	Rebuilt int64
	Took    time.Duration
}

// Seal seals every event of the embedded log about a person in place
// (webhook.LogSealer through bolt.Rewrite: same positions, ids, streams,
// revisions, times and types; the old file zeroed), then replaces the
// read models, which may hold personal attributes in the clear, by a
// rebuild from the sealed log.
func Seal(ctx context.Context, cfg config.Config, keys *privacy.Keyring, logger *slog.Logger) (SealResult, error) {
	start := time.Now()
	var res SealResult
	providers, err := cfg.Providers(logger)
	if err != nil {
		return res, err
	}
	// Hold the read models' lock throughout: a server cannot start on
	// the data dir meanwhile.
	viewsPath := filepath.Join(cfg.DataDir, "views.db")
	views, err := projections.Open(viewsPath, projections.WithLockTimeout(time.Second), projections.WithCacheBytes(cfg.Memory(false).Records), projections.WithMappedLimit(cfg.Memory(false).Mapped))
	if err != nil {
		return res, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir)
	}
	sealer := webhook.NewLogSealer(ctx, keys, providers)
	_, err = bolt.Rewrite(filepath.Join(cfg.DataDir, "events.db"), time.Second, sealer.Seal)
	res.LogSealStats = sealer.Stats()
	views.Close()
	if err != nil {
		return res, err
	}
	// The read models were built from the clear log: zero them and build
	// them again from the sealed one.
	_ = projections.RemoveScratch(viewsPath)
	if err := privacy.Shred(viewsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("shred the read models: %w", err)
	}
	store, views, closeAll, err := OpenOffline(cfg, "rebuild")
	if err != nil {
		return res, err
	}
	defer closeAll()
	rb, err := views.Rebuild(ctx, store, projections.RebuildOptions{})
	if err != nil {
		return res, fmt.Errorf("rebuild the read models: %w", err)
	}
	res.Rebuilt, res.Took = rb.Events, time.Since(start)
	return res, nil
}
