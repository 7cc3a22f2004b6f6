package datadir

import (
	"context"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/membudget"
	"github.com/receiptd/receiptd/privacy"
)

// kurrentRecheck is how long a node trusts a cached data key on KurrentDB
// before it asks the cluster again whether it was destroyed (another node
// may have forgotten its subject).
const kurrentRecheck = 5 * time.Second

// OpenKeyring opens the data keys beside the log: the key file for the
// embedded store, the key streams for kurrentdb. Nil without a privacy
// section.
func OpenKeyring(ctx context.Context, cfg config.Config, store eventstore.Store, mem membudget.Plan) (*privacy.Keyring, error) {
	p := cfg.Privacy
	if p == nil {
		return nil, nil
	}
	keks, err := p.KEKs()
	if err != nil {
		return nil, err
	}
	opts := privacy.Options{CacheBytes: mem.Keys}
	var ks privacy.Store
	switch cfg.Store.Kind {
	case "kurrentdb":
		log, ok := store.(privacy.Log)
		if !ok {
			return nil, fmt.Errorf("privacy: the %s store cannot hold keys (no tombstones)", cfg.Store.Kind)
		}
		ks, opts.Recheck = privacy.NewStreamStore(log), kurrentRecheck
	default:
		fs, err := privacy.OpenFileStore(cfg.KeyFile(), 0)
		if err != nil {
			return nil, err
		}
		ks = fs
		// With the log (the server, reforget): new subjects take keys
		// from a pool created ahead of need, their claims committed in
		// the background and recovered from the log after a crash. Not
		// for privacy seal, which rewrites the log in place.
		if store != nil {
			opts.Log = store
		}
	}
	r, err := privacy.NewKeyring(ctx, ks, keks, opts)
	if err != nil {
		ks.Close()
		return nil, err
	}
	return r, nil
}
