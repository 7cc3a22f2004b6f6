package projections

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/receiptd/receiptd/eventstore"
)

// RebuildIfAhead rebuilds the read models, before a server serves them,
// when their checkpoint is past the log's head: they were built from a log
// that has since gone back in time (a KurrentDB cluster restored from its
// backup, an events.db copied back by hand). Served as they are, they would
// show a future the log no longer has, and the Runner, resuming from that
// checkpoint, would skip the log's next events. The rebuild replaces them
// with read models of the log as it is (Rebuild accepts a result short of
// the old checkpoint: the log is the record). What it finds and does is
// logged to logger.
//
// It cannot see a restored log that has already grown past the old
// checkpoint again: after restoring a cluster, start receiptd before it
// takes writes, or run `receiptd rebuild` (README, "Operating receiptd").
func (db *DB) RebuildIfAhead(ctx context.Context, store eventstore.Store, logger *slog.Logger) error {
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read the log's head: %w", err)
	}
	cp := db.Checkpoint()
	if !head.Less(cp) {
		return nil
	}
	logger.Warn("the read models are ahead of the log (was the log restored from a backup?): rebuilding them from the log before serving",
		"checkpoint", cp.String(), "head", head.String())
	res, err := db.Rebuild(ctx, store, RebuildOptions{})
	if err != nil {
		return fmt.Errorf("the read models are at %s, past the log's head %s: rebuild them: %w", cp, head, err)
	}
	logger.Info("read models rebuilt from the log", "checkpoint", res.Position.String(), "events", res.Events, "took", res.Took.String())
	return nil
}
