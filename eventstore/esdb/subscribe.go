package esdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/receiptd/receiptd/eventstore"
)

// maxBatch bounds the events Subscribe hands to its handler at once.
const maxBatch = 512

// handlerError marks an error returned by the Subscribe handler, which ends
// Subscribe as it is.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// Subscribe implements eventstore.Store. It runs one server subscription to
// $all, filtered on the server to the selected categories, from `after`;
// when it drops, Subscribe resubscribes after the last event it has seen,
// waiting MinBackoff, then twice as long after each attempt that delivered
// nothing, up to MaxBackoff, until ctx ends or the Store closes.
func (s *Store) Subscribe(ctx context.Context, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error {
	if handle == nil {
		return fmt.Errorf("esdb: subscribe after %s: %w: nil handler", after, eventstore.ErrInvalid)
	}
	pos := after
	backoff := s.opts.MinBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.life.Err() != nil {
			return fmt.Errorf("esdb: subscribe after %s: %w", pos, eventstore.ErrClosed)
		}
		start := pos
		err := s.subscribeOnce(ctx, &pos, handle)
		var herr handlerError
		switch {
		case errors.As(err, &herr):
			return herr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case s.life.Err() != nil:
			return fmt.Errorf("esdb: subscribe after %s: %w", pos, eventstore.ErrClosed)
		}
		mapped := s.wrap(ctx, fmt.Sprintf("subscribe to $all after %s", pos), err)
		if permanent(err) {
			return mapped
		}
		if pos != start {
			backoff = s.opts.MinBackoff // it made progress: the server is there
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so that many processes do not resubscribe in step
		s.logger.Warn("esdb: subscription to $all dropped; resubscribing", "after", pos.String(), "retry_in", wait.Round(time.Millisecond).String(), "err", mapped)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		case <-s.life.Done():
			return fmt.Errorf("esdb: subscribe after %s: %w", pos, eventstore.ErrClosed)
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// permanent reports whether a subscription's error would come back at once
// on every attempt.
func permanent(err error) bool {
	if code, ok := errorCode(err); ok {
		switch code {
		case esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeUnsupportedFeature, esdb.ErrorCodeParsing:
			return true
		}
	}
	return errors.Is(err, eventstore.ErrInvalid)
}

// item is what the receiving goroutine passes on: an event or the error
// that ended the subscription.
type item struct {
	ev  *esdb.ResolvedEvent
	err error
}

// subscribeOnce runs one server subscription from *pos, delivering batches
// and advancing *pos past every event handled or skipped, until the
// subscription drops, the handler fails (handlerError), ctx ends or the
// Store closes.
func (s *Store) subscribeOnce(ctx context.Context, pos *eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(s.life, cancel)
	defer stopOnClose()

	var from esdb.AllPosition = esdb.Start{}
	if !pos.IsStart() {
		from = esdb.Position{Commit: pos.Commit, Prepare: pos.Prepare} // a subscription starts after it
	}
	opts := esdb.SubscribeToAllOptions{
		From:   from,
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: s.prefixes},
	}
	// Opening waits for the server's confirmation; it gets a call's deadline,
	// but the subscription itself lives on subCtx.
	opening := time.AfterFunc(s.opts.CallTimeout, cancel)
	sub, used, err := callOn(s, subCtx, func(ctx context.Context, c *esdb.Client) (*esdb.Subscription, error) {
		return c.SubscribeToAll(ctx, opts)
	})
	if !opening.Stop() && err == nil {
		_ = sub.Close()
		err = fmt.Errorf("opening the subscription took over %s: %w", s.opts.CallTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) && s.life.Err() == nil {
			err = fmt.Errorf("opening the subscription took over %s: %w", s.opts.CallTimeout, context.DeadlineExceeded)
		}
		return err
	}
	defer sub.Close()
	s.hold(used)
	defer s.release(used)

	items := make(chan item, maxBatch)
	received := make(chan struct{})
	go func() {
		defer close(received)
		defer close(items)
		for {
			e := sub.Recv()
			var it item
			switch {
			case e.EventAppeared != nil:
				it.ev = e.EventAppeared
			case e.SubscriptionDropped != nil:
				it.err = e.SubscriptionDropped.Error
				if it.err == nil {
					it.err = errors.New("subscription dropped")
				}
			default:
				// Checkpoints, caught-up, fell-behind: the Store resumes from
				// the events it saw, so it needs none of them.
				continue
			}
			select {
			case items <- it:
			case <-subCtx.Done():
				return
			}
			if it.err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		_ = sub.Close()
		for range items { // let the receiver finish
		}
		<-received
	}()

	seen := *pos // the last event seen, delivered or skipped
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
		case <-subCtx.Done():
			return subCtx.Err()
		}
		if !ok {
			return subCtx.Err()
		}
		var batch []eventstore.RecordedEvent
		var dropped error
		for {
			if it.err != nil {
				dropped = it.err
				break
			}
			if e, ok := recorded(it.ev); ok && seen.Less(e.Position) {
				seen = e.Position
				if s.selected(e) {
					batch = append(batch, e)
				}
			}
			if len(batch) == maxBatch {
				break
			}
			select {
			case it, ok = <-items:
				if ok {
					continue
				}
			default:
			}
			break
		}
		if len(batch) > 0 {
			if err := handle(ctx, batch); err != nil {
				return handlerError{err}
			}
		}
		*pos = seen
		if dropped != nil {
			if subCtx.Err() == nil {
				// The drop may say the connection is gone: the next attempt
				// then starts on a new client.
				s.observe(used, dropped)
			}
			return dropped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
