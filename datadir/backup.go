package datadir

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/api"
)

// Snapshotter is what the Backup RPC copies: the embedded store's
// snapshots; nil for another log (the RPC then refuses).
func Snapshotter(store eventstore.Store) api.Snapshotter {
	s, ok := store.(*bolt.Store)
	if !ok {
		return nil
	}
	return func() (api.Snapshot, error) {
		sn, err := s.Snapshot()
		if err != nil {
			return nil, err
		}
		return sn, nil
	}
}

// BackupOffline copies the events.db of a stopped server.
func BackupOffline(cfg config.Config, to string) (backup.Header, error) {
	if cfg.Store.Kind != "embedded" {
		return backup.Header{}, fmt.Errorf("the log is in %s: back it up with the cluster's own backup (README, \"Operating receiptd\")", cfg.Store.Kind)
	}
	path := filepath.Join(cfg.DataDir, "events.db")
	hdr, err := backup.Offline(path, to)
	if errors.Is(err, bolt.ErrLocked) {
		return backup.Header{}, fmt.Errorf("the embedded store %s is %w: back it up online instead, through that server: `receiptd backup --server HOST:GRPC_PORT --to %s` (gRPC receiptd.v1.BackupService/Backup)", path, ErrServerRunning, to)
	}
	return hdr, err
}
