package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/receiptd/receiptd/feed"
	bolt "go.etcd.io/bbolt"
)

// bucketFeed holds the feed's events (package feed), written by the
// applier in the transaction of the log event that caused them:
// be64(feed position) → feed.Marshal(event). Positions are a function of
// the log (feed.Pos), so a rebuild writes the same keys and values.
var bucketFeed = []byte("feed")

var _ feed.Source = (*DB)(nil)

// ReadFeed implements feed.Source: up to max feed events after after, in
// position order, read in one transaction with the checkpoint, so upTo
// (the feed's head when fewer than max are returned) covers exactly what
// the read models had applied.
func (d *DB) ReadFeed(_ context.Context, after uint64, max int) ([]feed.Event, uint64, error) {
	var out []feed.Event
	var upTo uint64
	err := d.view(func(tx *bolt.Tx) error {
		head := feed.HeadAt(decodePosition(tx.Bucket(bucketMeta).Get(keyCheckpoint)).Commit)
		upTo = head
		b := tx.Bucket(bucketFeed)
		if b == nil || max <= 0 {
			return nil
		}
		c := b.Cursor()
		from := binary.BigEndian.AppendUint64(nil, after+1)
		if after == ^uint64(0) {
			return nil
		}
		for k, v := c.Seek(from); k != nil && len(out) < max; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("feed key %x: %w", k, feed.ErrBadEvent)
			}
			e, err := feed.Unmarshal(binary.BigEndian.Uint64(k), bytes.Clone(v))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		if len(out) == max {
			upTo = out[len(out)-1].Position
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("projections: read the feed after %d: %w", after, err)
	}
	return out, max64(upTo, after), nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// FeedHead implements feed.Source: the feed position of the checkpoint.
func (d *DB) FeedHead() uint64 { return feed.HeadAt(d.commit.Load()) }

// WaitFeed implements feed.Source: it waits for the read models to apply
// a log event past the one feed position after belongs to.
func (d *DB) WaitFeed(ctx context.Context, after uint64) error {
	if d.FeedHead() > after {
		return nil
	}
	if err := d.WaitFor(ctx, feed.LogPosition(after)+1); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("projections: wait for the feed after %d: %w", after, ctx.Err())
		}
		return err
	}
	return nil
}
