package bolt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Snapshot is a consistent copy of a store's file as of one bbolt read
// transaction: every event up to Head and nothing after it. Appends go on
// while it is open (bbolt does not reuse a page an open read transaction
// may still read), and WriteTo streams the file as of the transaction.
//
// Close it: while it is open, Store.Close waits for it, and a commit that
// must grow bbolt's memory map (the file passing its mapped size, which
// doubles up to 1 GiB and then grows by 1 GiB) waits for it too, because
// bbolt remaps under a lock its read transactions hold. A snapshot streamed
// over a slow link can therefore stall appends; Options.InitialMmapSize
// above the file's size avoids the remap.
type Snapshot struct {
	tx      *bbolt.Tx
	head    uint64
	release func() error
	closed  bool
}

// Snapshot begins a snapshot of the store's file. It fails with
// eventstore.ErrClosed once the store is closed.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.life.RLock()
	if s.dbClosed {
		s.life.RUnlock()
		return nil, fmt.Errorf("bolt: snapshot %s: %w", s.path, eventstore.ErrClosed)
	}
	sn, err := begin(s.db, func() error { s.life.RUnlock(); return nil })
	if err != nil {
		return nil, fmt.Errorf("bolt: snapshot %s: %w", s.path, err)
	}
	return sn, nil
}

// OpenSnapshot opens the store file at path read-only, for a backup with no
// server running, and begins a snapshot of it; Close closes the file. It
// never creates or changes the file. A process holding the file open (a
// server) holds its lock: then OpenSnapshot fails after lockTimeout with an
// error matching ErrLocked.
func OpenSnapshot(path string, lockTimeout time.Duration) (*Snapshot, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("bolt: snapshot %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: snapshot %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: snapshot %s: %w", path, err)
	}
	sn, err := begin(db, db.Close)
	if err != nil {
		return nil, fmt.Errorf("bolt: snapshot %s: %w", path, err)
	}
	return sn, nil
}

// begin starts the read transaction of a snapshot of db and reads its head;
// release runs once the transaction has ended.
func begin(db *bbolt.DB, release func() error) (*Snapshot, error) {
	tx, err := db.Begin(false)
	if err != nil {
		release()
		return nil, err
	}
	head, err := checkSchema(tx)
	if err != nil {
		tx.Rollback()
		release()
		return nil, err
	}
	return &Snapshot{tx: tx, head: head, release: release}, nil
}

// checkSchema checks the schema version and the head of the file tx reads.
func checkSchema(tx *bbolt.Tx) (uint64, error) {
	if _, err := readMeta(tx.Bucket(bucketMeta)); err != nil {
		return 0, err
	}
	return lastPosition(tx)
}

// Head returns the position of the snapshot's last event (0 for an empty
// log): the backup holds events 1..Head.
func (sn *Snapshot) Head() uint64 { return sn.head }

// Size returns the number of bytes WriteTo writes: the file up to its
// highest page in use as of the snapshot (free pages within it included).
func (sn *Snapshot) Size() int64 { return sn.tx.Size() }

// WriteTo writes the snapshot to w: a bbolt file that Open opens as a store
// holding exactly the snapshot's events. It may be called once.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := sn.tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("bolt: snapshot: write: %w", err)
	}
	return n, nil
}

// Close ends the snapshot's read transaction. Closing twice is a no-op.
func (sn *Snapshot) Close() error {
	if sn.closed {
		return nil
	}
	sn.closed = true
	err := sn.tx.Rollback()
	if errors.Is(err, berrors.ErrTxClosed) {
		err = nil
	}
	return errors.Join(err, sn.release())
}

// CheckFile checks the closed store file at path, as a restore does before
// it puts the file in place: bbolt's consistency check of every page, the
// schema version, and a head that is the last event's position. It returns
// the head. The file is opened read-only and never changed.
func CheckFile(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	defer db.Close()
	var head uint64
	err = db.View(func(tx *bbolt.Tx) error {
		// Pages past the end of the file are mapped but not there: reading
		// one would fault. Only the meta page has been read so far.
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: truncated: %d bytes, its pages reach %d", errCorrupt, fi.Size(), tx.Size())
		}
		var errs []error
		for err := range tx.Check() { // drained: the checker blocks on a full channel
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("%w: %w", errCorrupt, err)
		}
		head, err = checkSchema(tx)
		if err != nil {
			return err
		}
		if n := uint64(tx.Bucket(bucketEvents).Stats().KeyN); n != head {
			return fmt.Errorf("%w: %d events, head at %d", errCorrupt, n, head)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	return head, nil
}
