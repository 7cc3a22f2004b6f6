package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	bolt "go.etcd.io/bbolt"
)

// DB is the read-model file: every view and the checkpoint of the last event
// applied to them, kept consistent by writing both in one transaction.
type DB struct {
	db *bolt.DB

	mu      sync.Mutex
	applied eventstore.Position
	changed chan struct{} // closed and replaced when applied advances
	commit  atomic.Uint64 // applied.Commit, for lock-free reads
}

// Open opens (creating if needed) the read-model file at path.
func Open(path string) (*DB, error) {
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	d := &DB{db: bdb, changed: make(chan struct{})}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil && string(v) != schemaVersion {
			return fmt.Errorf("read models have schema %q, this version writes %q: rebuild them", v, schemaVersion)
		}
		if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
		d.applied = decodePosition(meta.Get(keyCheckpoint))
		return nil
	})
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	d.commit.Store(d.applied.Commit)
	return d, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Checkpoint returns the position of the last event applied.
func (d *DB) Checkpoint() eventstore.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied
}

// WaitFor blocks until the event at commit position pos has been applied,
// or ctx ends (ErrBehind).
func (d *DB) WaitFor(ctx context.Context, pos uint64) error {
	for {
		if d.commit.Load() >= pos {
			return nil
		}
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		if d.commit.Load() >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projections: wait for position %d (at %d): %w", pos, d.commit.Load(), ErrBehind)
		}
	}
}

func (d *DB) advance(p eventstore.Position) {
	d.mu.Lock()
	d.applied = p
	d.commit.Store(p.Commit)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// Apply applies a batch of events in one transaction together with the new
// checkpoint. Events at or before the checkpoint are skipped, so a batch
// delivered twice is applied once.
func (d *DB) Apply(events []eventstore.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	var last eventstore.Position
	err := d.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cp := decodePosition(meta.Get(keyCheckpoint))
		a := applier{tx: tx}
		for _, e := range events {
			if !cp.Less(e.Position) {
				continue
			}
			if err := a.apply(e); err != nil {
				if !errors.Is(err, aggregate.ErrBadEvent) {
					return err
				}
				if err := a.skip(e, err); err != nil {
					return err
				}
			}
			cp = e.Position
		}
		last = cp
		return meta.Put(keyCheckpoint, encodePosition(cp))
	})
	if err != nil {
		return fmt.Errorf("projections: apply batch ending at %s: %w", events[len(events)-1].Position, err)
	}
	d.advance(last)
	return nil
}

// Receipt returns a receipt's view.
func (d *DB) Receipt(_ context.Context, source, receiptID string) (aggregate.ReceiptView, error) {
	var rec receiptRecord
	err := d.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketReceipts), key(source, receiptID), &rec)
	})
	if err != nil {
		return aggregate.ReceiptView{}, fmt.Errorf("projections: receipt %s/%s: %w", source, receiptID, err)
	}
	return rec.View, nil
}

// Balance returns a user's balance view.
func (d *DB) Balance(_ context.Context, source, userID string) (Balance, error) {
	var u userRecord
	err := d.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketUsers), key(source, userID), &u)
	})
	if err != nil {
		return Balance{}, fmt.Errorf("projections: balance of %s/%s: %w", source, userID, err)
	}
	return u.balance(source, userID), nil
}

// UserReceipts lists a user's receipts, newest first, a page at a time.
// pageToken is "" for the first page or a token this method returned.
func (d *DB) UserReceipts(_ context.Context, source, userID string, pageSize int, pageToken string) ([]aggregate.ReceiptView, string, error) {
	if pageSize <= 0 {
		return nil, "", fmt.Errorf("projections: list receipts of %s/%s: page size %d: %w", source, userID, pageSize, ErrBadPageToken)
	}
	prefix := append(key(source, userID), 0)
	var cursor []byte
	if pageToken != "" {
		c, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || !bytes.HasPrefix(c, prefix) {
			return nil, "", fmt.Errorf("projections: list receipts of %s/%s: %w", source, userID, ErrBadPageToken)
		}
		cursor = c
	}
	var views []aggregate.ReceiptView
	var last []byte
	more := false
	err := d.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get(key(source, userID)) == nil {
			return ErrNotFound
		}
		c := tx.Bucket(bucketUserReceipts).Cursor()
		// Newest first: walk backwards from the end of the user's keys, or
		// from just before the previous page's last key.
		from := cursor
		if from == nil {
			from = prefixEnd(prefix)
		}
		k, _ := c.Seek(from)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		receipts := tx.Bucket(bucketReceipts)
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if len(views) == pageSize {
				more = true
				return nil
			}
			receiptID := string(k[len(prefix)+8:])
			var rec receiptRecord
			if err := getJSON(receipts, key(source, receiptID), &rec); err != nil {
				return fmt.Errorf("index names receipt %s: %w", receiptID, err)
			}
			views = append(views, rec.View)
			last = append(last[:0], k...)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("projections: list receipts of %s/%s: %w", source, userID, err)
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString(last)
	}
	return views, next, nil
}

func key(source, id string) []byte {
	k := make([]byte, 0, len(source)+1+len(id))
	k = append(k, source...)
	k = append(k, 0)
	return append(k, id...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

func getJSON(b *bolt.Bucket, k []byte, v any) error {
	raw := b.Get(k)
	if raw == nil {
		return ErrNotFound
	}
	return json.Unmarshal(raw, v)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

func encodePosition(p eventstore.Position) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, p.Commit)
	binary.BigEndian.PutUint64(b[8:], p.Prepare)
	return b
}

func decodePosition(b []byte) eventstore.Position {
	if len(b) != 16 {
		return eventstore.Start
	}
	return eventstore.Position{Commit: binary.BigEndian.Uint64(b), Prepare: binary.BigEndian.Uint64(b[8:])}
}
