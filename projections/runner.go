package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/receiptd/receiptd/eventstore"
)

// Runner follows the log from the read models' checkpoint and applies every
// event, catching up first and then following live.
type Runner struct {
	store  eventstore.Store
	db     *DB
	logger *slog.Logger
	// RetryDelay is how long Run waits before resubscribing after an error.
	RetryDelay time.Duration
}

// NewRunner returns a runner applying store's events to db.
func NewRunner(store eventstore.Store, db *DB, logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: store, db: db, logger: logger, RetryDelay: time.Second}
}

// Run applies events until ctx ends or the store closes. A failed
// subscription or apply is logged and resumed from the checkpoint, which
// was written with the last applied batch, so nothing is applied twice.
func (r *Runner) Run(ctx context.Context) error {
	for {
		from := r.db.Checkpoint()
		err := r.store.Subscribe(ctx, from, func(_ context.Context, batch []eventstore.RecordedEvent) error {
			return r.db.Apply(batch)
		})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, eventstore.ErrClosed):
			return fmt.Errorf("projections: run: %w", err)
		}
		r.logger.Error("projection subscription ended; resuming from checkpoint", "checkpoint", r.db.Checkpoint().String(), "err", err)
		select {
		case <-time.After(r.RetryDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CatchUp applies every event up to the store's head at the time of the
// call, then returns: for rebuilds and tests.
func (r *Runner) CatchUp(ctx context.Context) error {
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("projections: catch up: %w", err)
	}
	for r.db.Checkpoint().Less(head) {
		batch, err := r.store.ReadAll(ctx, r.db.Checkpoint(), 1024)
		if err != nil {
			return fmt.Errorf("projections: catch up: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		if err := r.db.Apply(batch); err != nil {
			return err
		}
	}
	return nil
}
