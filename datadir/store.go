package datadir

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/internal/membudget"
)

// storeMmapBytes is the embedded store's initial memory map for the file at
// path: address space, not memory (a page of the file is resident only
// once read, and the store drops what it read every second). A commit that
// must grow the map waits for every open read transaction, and new reads
// wait behind it; an online backup holds a read transaction for as long as
// it streams. So a remap during a backup stalls every append and read of
// the log until the backup ends, and bbolt grows a map past 1 GiB by 1 GiB
// at a time: at about 1 KB per event, every million events. The map is
// therefore made large enough that it does not grow in practice: 64 GiB,
// or twice the file if that is more (an 8 GiB map grew once the log passed
// about 8 million events). etcd maps 10 GiB for the same reason. A process
// whose address space is capped (ulimit -v) below this cannot open it.
func storeMmapBytes(path string) int {
	const least = 64 << 30
	fi, err := os.Stat(path)
	if err != nil {
		return least
	}
	return int(max(least, 2*fi.Size()))
}

// storeOpenTimeout bounds connecting to KurrentDB at startup.
const storeOpenTimeout = 15 * time.Second

// OpenStore chooses the log with a switch on the config; mem sizes the
// embedded store's tail.
//
// With kurrentdb the log is the cluster's: this process keeps nothing of it
// on disk. The read models stay local (views.db under --data-dir), caught up
// from $all from their own checkpoint, so any number of receiptd processes
// can share one cluster, each with its own data dir.
func OpenStore(cfg config.Config, mem membudget.Plan) (eventstore.Store, error) {
	switch cfg.Store.Kind {
	case "embedded":
		path := filepath.Join(cfg.DataDir, "events.db")
		s, err := bolt.Open(path, bolt.Options{InitialMmapSize: storeMmapBytes(path), TailBytes: int(mem.Tail), MappedLimit: mem.Mapped})
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
