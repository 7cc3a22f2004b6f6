package feed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Source is where feed events are read from: the read models
// (*projections.DB), which store them with the views they describe; in
// tests, internal/feeddouble.
type Source interface {
	// ReadFeed returns up to max events with positions after after, in
	// position order, and upTo: the position the read covered, so that
	// every event at or before upTo and after after was returned. With
	// max events returned, upTo is the last one's position; with fewer,
	// it is the feed's head at the read (HeadAt of the read models'
	// checkpoint), which may be past the last event returned.
	ReadFeed(ctx context.Context, after uint64, max int) (events []Event, upTo uint64, err error)
	// WaitFeed blocks until the feed's head is past after, or ctx ends
	// (an error wrapping ctx.Err()).
	WaitFeed(ctx context.Context, after uint64) error
	// FeedHead returns the feed's head now.
	FeedHead() uint64
}

// Filter selects the events a subscriber or a destination gets. The zero
// Filter selects every event.
type Filter struct {
	// Kinds, if set, are the kinds selected.
	Kinds []string
	// Sources, if set, are the sources selected (an event's Source: for a
	// balance, its user id namespace).
	Sources []string
	// User, if set, selects only the events about that user (in
	// Event.UserIDs): a user's own subscription. UserSources, if set,
	// further limits them to those sources.
	User        string
	UserSources []string
}

// Match reports whether the filter selects e.
func (f Filter) Match(e *Event) bool {
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, e.Kind) {
		return false
	}
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, e.Source) {
		return false
	}
	if f.User != "" {
		if !slices.Contains(e.UserIDs, f.User) {
			return false
		}
		if len(f.UserSources) > 0 && !slices.Contains(f.UserSources, e.Source) {
			return false
		}
	}
	return true
}

// Defaults of Subscribe.
const (
	// DefaultCheckpointEvery is how often a subscriber is told the feed
	// passed events it filtered out.
	DefaultCheckpointEvery = 5 * time.Second
	// DefaultBatch is how many events a subscriber reads at a time.
	DefaultBatch = 256
)

// SubscribeOptions configure Subscribe.
type SubscribeOptions struct {
	// After is the position to start after: 0 for the whole feed, or the
	// last position the subscriber processed (an event's or a
	// checkpoint's).
	After  uint64
	Filter Filter
	// CheckpointEvery bounds how long the feed may pass filtered-out
	// events before the subscriber is sent a checkpoint
	// (DefaultCheckpointEvery if 0).
	CheckpointEvery time.Duration
	// Batch is how many events are read at a time (DefaultBatch if 0).
	Batch int
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Subscribe reads src after o.After and calls send with every event the
// filter selects, in position order, first the events already derived
// (catch-up), then each new one as the read models derive it (live): no
// gap, no repeat. When the feed has passed filtered-out events and nothing
// was sent for o.CheckpointEvery, it calls checkpoint with the position
// the feed reached, so that the subscriber can save it and resume from it
// without reading those events again.
//
// It holds nothing between reads but its position: a slow subscriber
// (send blocking) holds up no one else, and reads the feed from where it
// is when it comes back. It returns when ctx ends (an error wrapping
// ctx.Err()), or with the first error of src, send or checkpoint.
func Subscribe(ctx context.Context, src Source, o SubscribeOptions, send func(*Event) error, checkpoint func(pos uint64) error) error {
	every := o.CheckpointEvery
	if every <= 0 {
		every = DefaultCheckpointEvery
	}
	batch := o.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	after := o.After // read up to here
	told := after    // the subscriber knows the feed up to here
	lastMsg := now() // when the subscriber was last sent something
	for {
		// A Source need not heed ctx (the read models' does not), and send
		// need not either (a gRPC stream's Send heeds its own context, not
		// a server's lifetime): a subscriber catching up checks it here,
		// or it would end only once caught up.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("feed: subscribe: %w", err)
		}
		events, upTo, err := src.ReadFeed(ctx, after, batch)
		if err != nil {
			return fmt.Errorf("feed: subscribe after %d: %w", after, err)
		}
		for i := range events {
			if events[i].Position <= after {
				return fmt.Errorf("feed: subscribe: the source returned position %d after %d: %w", events[i].Position, after, ErrBadEvent)
			}
			after = events[i].Position
			if !o.Filter.Match(&events[i]) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("feed: subscribe: %w", err)
			}
			if err := send(&events[i]); err != nil {
				return err
			}
			told, lastMsg = after, now()
		}
		after = max(after, upTo)
		if after > told && now().Sub(lastMsg) >= every {
			if err := checkpoint(after); err != nil {
				return err
			}
			told, lastMsg = after, now()
		}
		if len(events) == batch {
			continue // more to catch up on
		}
		// Caught up: wait for more, but not past the next checkpoint due.
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if after > told {
			wctx, cancel = context.WithTimeout(ctx, every-now().Sub(lastMsg))
		}
		err = src.WaitFeed(wctx, after)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("feed: subscribe: %w", ctx.Err())
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("feed: subscribe: wait after %d: %w", after, err)
		}
	}
}
