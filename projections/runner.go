package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/receiptd/receiptd/eventstore"
)

// Runner follows the log from the read models' checkpoint and applies every
// event, catching up first and then following live.
//
// The subscription and the applier run apart: the subscription decodes
// each batch it receives and queues it, and the applier takes everything
// queued at once (up to MaxGroupEvents events and MaxGroupBytes bytes of
// events) into one transaction. While a transaction runs, the batches
// that arrive meanwhile queue up, so the busier the log, the larger and
// fewer the commits, and the more pages they share. A full queue holds
// the subscription back.
//
// While the log is busy (the group just applied held more than one
// batch) the next transaction starts no sooner than MinGroupInterval
// after the last one started, so that groups hold hundreds of events
// rather than a few commits' worth: a transaction decodes (and
// allocates) every page it writes, and the random pages of the receipts
// and users share the branch pages above them only in a large group. A
// lone batch (a quiet log, a test appending one event at a time) is
// applied at once.
type Runner struct {
	store  eventstore.Store
	db     *DB
	logger *slog.Logger
	// RetryDelay is how long Run waits before resubscribing after an error.
	RetryDelay time.Duration
	// MaxGroupEvents and MaxGroupBytes bound one transaction's events and
	// their size (data, metadata and raw body); the queue holds at most as
	// much again.
	MaxGroupEvents int
	MaxGroupBytes  int
	// BulkFrom is the least log head (commit position) at which Run
	// builds empty read models in bulk (see Run); 0: never.
	BulkFrom uint64
	// MinGroupInterval is the least time between the starts of two
	// transactions while the log is busy (see Runner); 0 applies what
	// is queued as soon as the last transaction ends.
	MinGroupInterval time.Duration
}

// Defaults of Runner.MaxGroupEvents, MaxGroupBytes, BulkFrom and
// MinGroupInterval.
const (
	// DefaultMaxGroupEvents: a group only grows past the events of one
	// MinGroupInterval (a few hundred at the bench's rates) when the read
	// models lag. Then, in a large file, each event dirties pages no other
	// event of the group shares, and bbolt holds every dirty page in the
	// heap until the commit: with 16,384 the runner's transaction was 58%
	// of the live heap under ingest into a 4.1M-event log at 256 MiB, the
	// collector ran every ~0.3 s, and ingest fell to 1,223–1,576
	// deliveries/s against 1,969–2,172/s with 1,024 (same data dir, old
	// and new in turn); into an empty data dir, 4,812/4,815 against
	// 4,703/4,717/s.
	DefaultMaxGroupEvents = 1024
	DefaultMaxGroupBytes  = 16 << 20
	DefaultBulkFrom       = replayBatch
	// DefaultMinGroupInterval is Runner.MinGroupInterval's default. The
	// read models may lag this much more under load: a read with
	// min_position waits for it (within the API's bounded wait).
	// Measured (issue 13, 2026-12-07, with a throwaway script outside
	// the repository; BenchmarkApplyGroups measures the per-event cost):
	// two servers at once under the bench's ingest, each with its own
	// generator, 3 rounds of 25 s, machine load 13-17: server CPU per delivery x0.946 with 100 ms
	// (rounds x0.997 x0.955 x0.946), x0.952 with 200 ms, against 0; at
	// 200 ms the groups held 300-450 events instead of ~27, and the
	// server allocated ~18% less per delivery.
	DefaultMinGroupInterval = 100 * time.Millisecond
)

// NewRunner returns a runner applying store's events to db.
func NewRunner(store eventstore.Store, db *DB, logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: store, db: db, logger: logger, RetryDelay: time.Second,
		MaxGroupEvents: DefaultMaxGroupEvents, MaxGroupBytes: DefaultMaxGroupBytes, BulkFrom: DefaultBulkFrom,
		MinGroupInterval: DefaultMinGroupInterval}
}

// Run applies events until ctx ends or the store closes. A failed
// subscription or apply is logged and resumed from the checkpoint, which
// was written with the last applied batch, so nothing is applied twice.
//
// Empty read models (a new file, or one Open discarded) with a log whose
// head is at least BulkFrom are first built in bulk (bulkCatchUp).
func (r *Runner) Run(ctx context.Context) error {
	r.bulkCatchUp(ctx)
	for {
		err := r.follow(ctx, r.db.Checkpoint())
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

// follow subscribes after from and applies what arrives until the
// subscription or an apply fails. It returns once its applier has
// stopped: what it queued and did not apply is read again from the
// checkpoint.
func (r *Runner) follow(ctx context.Context, from eventstore.Position) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newGroupQueue(max(r.MaxGroupEvents, 1), max(r.MaxGroupBytes, 1))
	applied := make(chan error, 1)
	go func() {
		err := r.applyQueued(ctx, q)
		q.fail(err)
		cancel() // an apply failed: end the subscription too
		applied <- err
	}()
	err := r.store.Subscribe(ctx, from, func(ctx context.Context, batch []eventstore.RecordedEvent) error {
		dec := make([]decodedEvent, len(batch))
		decodeEvents(batch, dec)
		return q.push(ctx, batch, dec)
	})
	cancel()
	if aerr := <-applied; aerr != nil && !errors.Is(aerr, context.Canceled) {
		return aerr
	}
	return err
}

// applyQueued applies queued groups until ctx ends or an apply fails.
func (r *Runner) applyQueued(ctx context.Context, q *groupQueue) error {
	var (
		events  []eventstore.RecordedEvent
		dec     []decodedEvent
		started time.Time // the last transaction's start
		busy    bool      // it held more than one batch
		timer   *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if wait := r.MinGroupInterval - time.Since(started); busy && wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			if err := q.waitFull(ctx, timer.C); err != nil {
				return err
			}
		}
		events, dec = events[:0], dec[:0]
		batches, err := q.take(ctx)
		if err != nil {
			return err
		}
		started, busy = time.Now(), len(batches) > 1
		for _, b := range batches {
			events = append(events, b.events...)
			dec = append(dec, b.dec...)
		}
		err = func() error {
			r.db.applyMu.Lock()
			defer r.db.applyMu.Unlock()
			return r.db.applyDecoded(events, dec)
		}()
		clear(events)
		clear(dec)
		if err != nil {
			return err
		}
	}
}

// queuedBatch is a batch the subscription delivered, decoded.
type queuedBatch struct {
	events []eventstore.RecordedEvent
	dec    []decodedEvent
	bytes  int
}

// groupQueue holds the batches the subscription delivered and the applier
// has not taken yet: at most maxEvents events and maxBytes bytes, unless
// one batch alone is larger.
type groupQueue struct {
	maxEvents, maxBytes int

	mu            sync.Mutex
	batches       []queuedBatch
	events, bytes int
	err           error         // the applier stopped
	changed       chan struct{} // closed and replaced when the queue changes
}

func newGroupQueue(maxEvents, maxBytes int) *groupQueue {
	return &groupQueue{maxEvents: maxEvents, maxBytes: maxBytes, changed: make(chan struct{})}
}

// signal wakes whoever waits on the queue. q.mu is held.
func (q *groupQueue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// push queues a batch, waiting while the queue is full. It returns the
// applier's error once it stopped.
func (q *groupQueue) push(ctx context.Context, events []eventstore.RecordedEvent, dec []decodedEvent) error {
	n := 0
	for i := range events {
		n += eventBytes(&events[i])
	}
	q.mu.Lock()
	for q.err == nil && len(q.batches) > 0 && (q.events+len(events) > q.maxEvents || q.bytes+n > q.maxBytes) {
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.batches = append(q.batches, queuedBatch{events: events, dec: dec, bytes: n})
	q.events += len(events)
	q.bytes += n
	q.signal()
	return nil
}

// take returns the queued batches, oldest first, up to maxEvents events
// and maxBytes bytes (at least one batch), waiting for one if none is.
func (q *groupQueue) take(ctx context.Context) ([]queuedBatch, error) {
	q.mu.Lock()
	for len(q.batches) == 0 {
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	n, events, bytes := 0, 0, 0
	for n < len(q.batches) && (n == 0 || (events+len(q.batches[n].events) <= q.maxEvents && bytes+q.batches[n].bytes <= q.maxBytes)) {
		events += len(q.batches[n].events)
		bytes += q.batches[n].bytes
		n++
	}
	out := q.batches[:n:n]
	q.batches = append([]queuedBatch(nil), q.batches[n:]...)
	q.events -= events
	q.bytes -= bytes
	q.signal()
	return out, nil
}

// waitFull waits until the queue holds a whole group (maxEvents events or
// maxBytes bytes), the applier stopped, ctx ends (its error) or until is
// ready.
func (q *groupQueue) waitFull(ctx context.Context, until <-chan time.Time) error {
	for {
		q.mu.Lock()
		full := q.events >= q.maxEvents || q.bytes >= q.maxBytes || q.err != nil
		ch := q.changed
		q.mu.Unlock()
		if full {
			return nil
		}
		select {
		case <-ch:
		case <-until:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fail records that the applier stopped with err (nil: it stopped
// because ctx ended).
func (q *groupQueue) fail(err error) {
	if err == nil {
		err = context.Canceled
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
	q.signal()
}

// eventBytes is what an event holds in memory, roughly.
func eventBytes(e *eventstore.RecordedEvent) int {
	return len(e.Data) + len(e.Metadata) + len(e.Body) + len(e.ID) + len(e.Type) + len(e.Stream) + 128
}

// bulkCatchUp builds empty read models (at the start of the log: a new
// read-model file, or one Open discarded) as a rebuild does, in bulk up to
// the log's head and swapped in (Rebuild: bulk.go), instead of applying
// every event in log order: the bulk build reads the log once, decodes on
// every core and writes each record once, where applying in log order
// reads and rewrites a receipt's records at each of its events. Until the
// swap, reads answer from the empty read models (and min_position waits),
// as they would while the events were applied. If it fails, Run applies
// the log event by event instead.
func (r *Runner) bulkCatchUp(ctx context.Context) {
	if r.BulkFrom == 0 || r.db.Checkpoint() != eventstore.Start {
		return
	}
	head, err := r.store.Head(ctx)
	if err != nil || head.Commit < r.BulkFrom {
		return
	}
	start := time.Now()
	res, err := r.db.rebuild(ctx, r.store, RebuildOptions{}, false)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("projections: building the empty read models in bulk failed; applying the log event by event", "err", err)
		}
		return
	}
	r.logger.Info("projections: built the empty read models in bulk", "events", res.Events, "position", res.Position.String(), "took", time.Since(start).Round(time.Millisecond).String())
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
