package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/eventstore/esdb"
)

// storeMmapBytes is the embedded store's initial memory map (address space,
// not memory): a commit that must grow the map waits for every open read
// transaction, and an online backup holds one for as long as it streams.
// Below this size the map never grows. (etcd maps 10 GiB for the same
// reason.)
const storeMmapBytes = 8 << 30

// storeOpenTimeout bounds connecting to KurrentDB at startup.
const storeOpenTimeout = 15 * time.Second

// openStore chooses the log with a switch on the config; mem sizes the
// embedded store's tail.
//
// With kurrentdb the log is the cluster's: this process keeps nothing of it
// on disk. The read models stay local (views.db under --data-dir), caught up
// from $all from their own checkpoint, so any number of receiptd processes
// can share one cluster, each with its own data dir.
func openStore(cfg Config, mem memoryPlan) (eventstore.Store, error) {
	switch cfg.Store.Kind {
	case "embedded":
		s, err := bolt.Open(filepath.Join(cfg.DataDir, "events.db"), bolt.Options{InitialMmapSize: storeMmapBytes, TailBytes: int(mem.Tail)})
		if err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		return s, nil
	case "kurrentdb":
		ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
		defer cancel()
		// The adapter's warnings (a connection lost, a subscription
		// resumed) in the server's log format.
		logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "kurrentdb")
		s, err := esdb.Open(ctx, cfg.Store.URL, esdb.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("kurrentdb store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store kind %q is not supported by this build", cfg.Store.Kind)
	}
}
