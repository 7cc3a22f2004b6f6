package bolt

import (
	"context"
	"fmt"

	"github.com/receiptd/receiptd/eventstore"
)

// Subscribe implements eventstore.Store. Once it has caught up it takes new
// events from the tail of recent commits the committer keeps in memory
// (Options.TailBytes), without reading the file; otherwise (catching up,
// or when it fell behind the tail) it reads the log in batches of at
// most 2048 events, each in its own short read transaction. It calls handle
// with no transaction open: a slow handler never holds back the writer (a
// long read transaction would block bbolt's remap of a growing file). Once it
// has read everything, it waits for the next commit, having taken the
// commit's notification channel before its last read so that a commit
// landing between that read and the wait still wakes it. It returns
// eventstore.ErrClosed (wrapped) when the store closes.
func (s *Store) Subscribe(ctx context.Context, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error {
	if handle == nil {
		return fmt.Errorf("bolt: subscribe after %s: %w: nil handler", after, eventstore.ErrInvalid)
	}
	pos := after
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		changed := s.changed()
		batch, fromTail, err := s.tail.after(pos, readBatch)
		if err == nil && !fromTail {
			batch, err = s.readAll(ctx, pos, readBatch)
		}
		if fromTail {
			s.stats.tailEvents.Add(uint64(len(batch)))
		} else {
			s.stats.fileEvents.Add(uint64(len(batch)))
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("bolt: subscribe after %s: %w", pos, err)
		}
		if s.opts.afterSubscribeRead != nil {
			s.opts.afterSubscribeRead(len(batch))
		}
		if len(batch) > 0 {
			if err := handle(ctx, batch); err != nil {
				return err
			}
			pos = batch[len(batch)-1].Position
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return fmt.Errorf("bolt: subscribe after %s: %w", pos, eventstore.ErrClosed)
		}
	}
}
