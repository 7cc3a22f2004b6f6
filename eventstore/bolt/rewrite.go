package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/filesync"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// RewriteFunc decides an event's new bytes for Rewrite: ok false leaves it
// as it is. It may change Data, Metadata and Body; the id, type, stream,
// revision, position and recording time stay.
type RewriteFunc func(eventstore.RecordedEvent) (e aggregate.Event, ok bool, err error)

// rewriteBatch is how many events Rewrite changes per transaction.
const rewriteBatch = 1000

// Rewrite is an offline migration of the store file at path (receiptd
// privacy seal): it passes every event, in position order, to fn and
// writes each one fn changes back in place, at its position, with its
// stream, revision, time, id and type. No server may hold the file: one
// that does makes it fail after lockTimeout (a second if 0) with ErrLocked.
//
// bbolt never overwrites a page in place, so the records' old bytes would
// stay in the file's freed pages. Once every event is rewritten, the file
// is therefore compacted into a new one, which replaces it, and the old
// file is overwritten with zeros, synced and removed (a hard link
// path+".shred" to it, made before the swap, is what a crash leaves; a
// second Rewrite finishes it). It returns how many events changed.
func Rewrite(path string, lockTimeout time.Duration, fn RewriteFunc) (int, error) {
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	if err := finishShred(path); err != nil {
		return 0, fmt.Errorf("bolt: rewrite %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("bolt: rewrite %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, FreelistType: bbolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, fmt.Errorf("bolt: rewrite %s: %w", path, ErrLocked)
	}
	if err != nil {
		return 0, fmt.Errorf("bolt: rewrite %s: %w", path, err)
	}
	n, err := rewriteEvents(db, fn)
	if err != nil {
		db.Close()
		return n, fmt.Errorf("bolt: rewrite %s: %w", path, err)
	}
	if n == 0 {
		return 0, db.Close()
	}
	if err := compactAndShred(db, path); err != nil {
		return n, fmt.Errorf("bolt: rewrite %s: compact: %w", path, err)
	}
	return n, nil
}

type rewritten struct {
	key, rec []byte
}

// rewriteEvents runs fn over every event, a batch of reads then a write
// transaction at a time.
func rewriteEvents(db *bbolt.DB, fn RewriteFunc) (int, error) {
	n := 0
	var after []byte
	for {
		var (
			batch []rewritten
			seen  int
			last  []byte
		)
		err := db.View(func(tx *bbolt.Tx) error {
			events := tx.Bucket(bucketEvents)
			if events == nil {
				return nil
			}
			c := events.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && seen < rewriteBatch; k, v = c.Next() {
				seen++
				last = bytes.Clone(k)
				if len(k) != 8 {
					return fmt.Errorf("%w: event key of %d bytes", errCorrupt, len(k))
				}
				ev, err := decodeRecord(beUint64(k), v)
				if err != nil {
					return err
				}
				ne, ok, err := fn(ev)
				if err != nil {
					return fmt.Errorf("event at %d: %w", ev.Position.Commit, err)
				}
				if !ok {
					continue
				}
				ne.ID, ne.Type = ev.ID, ev.Type
				rec := appendRecord(make([]byte, 0, recordLen(ev.Stream, ne)), ev.Stream, ne)
				stampRecord(rec, ev.Revision, ev.RecordedAt.UnixNano())
				batch = append(batch, rewritten{key: bytes.Clone(k), rec: rec})
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if len(batch) > 0 {
			err = db.Update(func(tx *bbolt.Tx) error {
				events := tx.Bucket(bucketEvents)
				for _, r := range batch {
					if err := events.Put(r.key, r.rec); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			n += len(batch)
		}
		if seen < rewriteBatch {
			return n, nil
		}
		after = last
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

const (
	compactSuffix = ".compact"
	shredSuffix   = ".shred"
)

// compactAndShred copies db's live pages into a new file that replaces
// path, then zeroes and removes the old file. db is closed on return.
func compactAndShred(db *bbolt.DB, path string) error {
	tmp := path + compactSuffix
	_ = os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{PageSize: db.Info().PageSize, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		db.Close()
		return err
	}
	err = bbolt.Compact(dst, db, 64<<20)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		db.Close()
		os.Remove(tmp)
		return err
	}
	shred := path + shredSuffix
	_ = os.Remove(shred)
	if err := os.Link(path, shred); err != nil {
		db.Close()
		os.Remove(tmp)
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := filesync.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := filesync.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return filesync.ZeroAndRemove(shred)
}

// finishShred completes a compaction a crash interrupted: a shred link to
// a file that was replaced is zeroed and removed; one to the file still in
// place (the swap never happened) is only removed, and the rewrite, which
// is idempotent, compacts again.
func finishShred(path string) error {
	_ = os.Remove(path + compactSuffix)
	shred := path + shredSuffix
	si, err := os.Stat(shred)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if pi, err := os.Stat(path); err == nil && os.SameFile(si, pi) {
		return os.Remove(shred)
	}
	return filesync.ZeroAndRemove(shred)
}
