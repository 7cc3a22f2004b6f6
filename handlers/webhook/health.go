package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// DefaultHealthHold is HealthOptions.Hold's default.
const DefaultHealthHold = 5 * time.Second

// HealthOptions tune a StoreHealth. The zero value is usable.
type HealthOptions struct {
	// Hold is how long Ready stays false after an append or a read failed
	// for the store's sake, unless one succeeds meanwhile. Default
	// DefaultHealthHold (5 s).
	Hold time.Duration
	// Clock is read to stamp failures. Default time.Now.
	Clock func() time.Time
}

// StoreHealth is the store the Handler appends through, as seen by a
// readiness probe: it passes every call to the wrapped eventstore.Store and
// remembers how ingest's reads and appends went.
//
// Ready is false while ingest cannot make events durable: from an append
// or stream read that failed for the store's sake (eventstore.ErrUnavailable,
// eventstore.ErrClosed, a deadline the store did not meet, or an error
// outside the Store contract) until one succeeds again, or until Hold has
// passed with no further failure. The second way out matters because a
// probe that reports not-ready usually stops the traffic (a load balancer
// takes the instance out), and with no traffic no append could ever
// succeed: after Hold, readiness comes back on its own, deliveries flow
// again, and the first one that fails takes it away once more — a circuit
// breaker's half-open state. Failures that say nothing about the store
// (eventstore.ErrWrongRevision, eventstore.ErrInvalid, a cancelled
// context) leave the state as it is; a wrong revision counts as a
// success, since the store answered.
//
// Ready also fails when the store does not answer Head (closed).
//
// StoreHealth is safe for concurrent use. Subscribe, ReadAll, Head and
// Close are passed through unobserved: they are not ingest's path.
type StoreHealth struct {
	eventstore.Store
	hold  time.Duration
	clock func() time.Time

	mu        sync.Mutex
	failing   bool      // the last observed outcome was a store failure
	failedAt  time.Time // when it was observed
	lastErr   error
	failures  uint64 // store failures observed since New
	successes uint64
}

var _ eventstore.Store = (*StoreHealth)(nil)

// NewStoreHealth wraps store.
func NewStoreHealth(store eventstore.Store, opts HealthOptions) *StoreHealth {
	h := &StoreHealth{Store: store, hold: cmp.Or(opts.Hold, DefaultHealthHold), clock: opts.Clock}
	if h.clock == nil {
		h.clock = time.Now
	}
	return h
}

// Append implements eventstore.Store, recording the outcome.
func (h *StoreHealth) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	res, err := h.Store.Append(ctx, stream, expected, events...)
	h.observe(err)
	return res, err
}

// ReadStream implements eventstore.Store, recording the outcome.
func (h *StoreHealth) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := h.Store.ReadStream(ctx, stream, from, limit)
	h.observe(err)
	return evs, err
}

// storeFault reports whether err says the store could not do its job, and
// whether err says anything about the store at all.
func storeFault(err error) (fault, telling bool) {
	switch {
	case err == nil, errors.Is(err, eventstore.ErrWrongRevision):
		return false, true
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return true, true
	case errors.Is(err, eventstore.ErrInvalid), errors.Is(err, context.Canceled):
		return false, false
	default:
		return true, true
	}
}

func (h *StoreHealth) observe(err error) {
	fault, telling := storeFault(err)
	if !telling {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if fault {
		h.failing, h.failedAt, h.lastErr = true, h.clock(), err
		h.failures++
		return
	}
	h.failing = false
	h.successes++
}

// ErrNotReady: ingest cannot make deliveries durable right now. Ready's
// errors wrap it.
var ErrNotReady = errors.New("webhook: ingest not ready")

// Ready returns nil when ingest can take deliveries, or an error wrapping
// ErrNotReady that says why (for a log line, not for the probe's client:
// it may carry a store error's text).
func (h *StoreHealth) Ready(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := h.Store.Head(hctx); err != nil {
		return fmt.Errorf("%w: store head: %w", ErrNotReady, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		if since := h.clock().Sub(h.failedAt); since < h.hold {
			return fmt.Errorf("%w: the last append or read failed %v ago: %w", ErrNotReady, since.Round(time.Millisecond), h.lastErr)
		}
	}
	return nil
}

// HealthStats counts the outcomes a StoreHealth observed.
type HealthStats struct {
	Failures, Successes uint64
}

// Stats returns the counts of store failures and successes observed.
func (h *StoreHealth) Stats() HealthStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HealthStats{Failures: h.failures, Successes: h.successes}
}
