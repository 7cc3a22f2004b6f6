package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	bbolt "go.etcd.io/bbolt"
)

// The baselines group commit is measured against (BenchmarkAppend), and
// tested like it: Append without the committer.

// WithNoGroupCommit makes every Append run its own bbolt write
// transaction, so its own fsync, serialised by bbolt's writer lock.
// Append checks ctx only before it starts.
func WithNoGroupCommit(o Options) Options {
	o.appendVia = func(s *Store, r *request) (eventstore.AppendResult, error) {
		return appendDirect(s, r, s.db.Update, nil)
	}
	return o
}

// WithBoltBatch makes Append use bbolt's DB.Batch (MaxBatchDelay 10 ms)
// instead of the committer.
func WithBoltBatch(o Options) Options {
	var last atomic.Pointer[bbolt.Tx] // the batch whose commit is counted
	o.appendVia = func(s *Store, r *request) (eventstore.AppendResult, error) {
		return appendDirect(s, r, s.db.Batch, &last)
	}
	return o
}

// appendDirect runs one append in a write transaction of update
// (DB.Update, or DB.Batch, which shares a transaction between concurrent
// calls: last then counts each shared commit once).
func appendDirect(s *Store, r *request, update func(func(*bbolt.Tx) error) error, last *atomic.Pointer[bbolt.Tx]) (eventstore.AppendResult, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.dbClosed {
		return eventstore.AppendResult{}, fmt.Errorf("bolt: append %q: %w", r.stream, eventstore.ErrClosed)
	}
	var (
		res   eventstore.AppendResult
		fnErr error
	)
	err := update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx, s.schema)
		if err == nil {
			res, err = apply(b, r, time.Now().UnixNano(), nil, &s.pending)
		}
		if err == nil && (last == nil || last.Swap(tx) != tx) {
			tx.OnCommit(func() { s.stats.commits.Add(1) })
		}
		fnErr = err
		return err
	})
	switch {
	case err == nil:
		s.stats.appends.Add(1)
		s.stats.events.Add(uint64(len(r.recs)))
		s.publish(res.Position.Commit)
		return res, nil
	case err == fnErr && errors.Is(err, eventstore.ErrWrongRevision):
		s.stats.wrongRevisions.Add(1)
		return eventstore.AppendResult{}, err
	default:
		s.stats.unavailable.Add(1)
		return eventstore.AppendResult{}, unavailable(r.stream, err)
	}
}

// WithBeforeCommit runs f in the committer before each commit, with the
// batch's write transaction open: a test can hold it to make appends queue.
func WithBeforeCommit(o Options, f func()) Options {
	o.beforeCommit = f
	return o
}

// WithAfterSubscribeRead runs f in Subscribe after each of its reads, with
// the number of events read: between the read and the wait for a commit.
func WithAfterSubscribeRead(o Options, f func(n int)) Options {
	o.afterSubscribeRead = f
	return o
}

// WithRecordV1 makes the store write version 1 records (no Body), as it did
// before version 2.
func WithRecordV1(o Options) Options {
	o.recordV1 = true
	return o
}

// WithPageSize sets the page size of a new file.
func WithPageSize(o Options, n int) Options {
	o.pageSize = n
	return o
}

// WithoutScanAdvice turns off the madvise calls of scans (see scanRange).
func WithoutScanAdvice(o Options) Options {
	o.noScanAdvice = true
	return o
}

// WithGrowBy makes the file grow by n bytes at a time (bbolt's default:
// 16 MiB), instead of a step that follows its size.
func WithGrowBy(o Options, n int) Options {
	o.growBy = n
	return o
}

// WithSchema1 makes a new file in schema 1, as the store did before schema
// 2.
func WithSchema1(o Options) Options {
	o.schema1 = true
	return o
}

// WithSchema2 makes a new file in schema 2, as the store did before schema
// 3.
func WithSchema2(o Options) Options {
	o.schema2 = true
	return o
}

// IndexedPosition returns the file's indexed position as the store knows
// it (schema 3): Open reads the events after it.
func IndexedPosition(s *Store) uint64 { return s.pending.indexed }

// PendingEntries returns the number of index entries the store holds in
// memory (schema 3).
func PendingEntries(s *Store) int {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	return s.pending.entries
}

// QueueLen returns the number of appends waiting for the committer.
func QueueLen(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Verify checks the closed store file at path: bbolt's own consistency check,
// then the store's invariants. Positions run 1..N without a gap and end at
// the events sequence; every event decodes and has exactly its index entry;
// every stream's revisions run 0..n-1 in position order.
func Verify(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("verify %s: bbolt check: %w", path, err)
		}
		head, err := lastPosition(tx)
		if err != nil {
			return fmt.Errorf("verify %s: %w", path, err)
		}
		fm, err := readMeta(tx.Bucket(bucketMeta))
		if err != nil {
			return fmt.Errorf("verify %s: %w", path, err)
		}
		schema := fm.schema
		b, err := openBuckets(tx, schema)
		if err != nil {
			return err
		}
		next := map[string]uint64{}
		var want, indexed uint64
		err = b.events.ForEach(func(k, v []byte) error {
			want++
			pos := binary.BigEndian.Uint64(k)
			if pos != want {
				return fmt.Errorf("event at position %d where %d was due", pos, want)
			}
			ev, err := decodeRecord(pos, v)
			if err != nil {
				return err
			}
			if ev.Revision != next[ev.Stream] {
				return fmt.Errorf("%s@%d at position %d, revision %d was due", ev.Stream, ev.Revision, pos, next[ev.Stream])
			}
			next[ev.Stream]++
			var idx []byte
			switch schema {
			case schema1:
				idx = b.streams.Get(appendStreamKey(nil, ev.Stream, ev.Revision))
			case schema2:
				if id := b.names.Get([]byte(ev.Stream)); id != nil {
					idx = b.index.Get(appendOrd(append([]byte(nil), id...), ev.Revision))
				}
			default:
				h := hashStream(&fm.streamKey, ev.Stream)
				idx = b.index.Get(appendOrd(h[:], ev.Revision))
				if idx == nil && pos > fm.indexed {
					return nil // its entry was in memory
				}
			}
			if got, ok := indexPosition(schema, idx); !ok || got != pos {
				return fmt.Errorf("index of %s@%d points at %x, the event is at %d", ev.Stream, ev.Revision, idx, pos)
			}
			indexed++
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify %s: %w", path, err)
		}
		if want != head {
			return fmt.Errorf("verify %s: %d events, head at %d", path, want, head)
		}
		index := b.streams
		if schema != schema1 {
			index = b.index
		}
		if schema == schema2 {
			if n := b.names.Stats().KeyN; n != len(next) {
				return fmt.Errorf("verify %s: %d stream ids for %d streams", path, n, len(next))
			}
		}
		// Every entry is an event's (which each found its own).
		if n := uint64(index.Stats().KeyN); n != indexed {
			return fmt.Errorf("verify %s: %d index entries for %d events indexed", path, n, indexed)
		}
		return nil
	})
}

// SpaceStats is where the bytes of a closed store file go.
type SpaceStats struct {
	// FileBytes is the file's size.
	FileBytes int64
	// PageSize is bbolt's page size.
	PageSize int
	// Alloc is the bytes of pages each bucket holds (leaf, branch and
	// overflow pages), InUse the bytes of them its keys, values and page
	// headers fill.
	Alloc, InUse map[string]int
	// HighWater is the size of the pages bbolt has used (the file may be
	// longer: bbolt grows it in steps of up to 16 MiB).
	HighWater int64
	// FreeBytes is the bytes of free pages below the high water mark
	// (bbolt's freelist), FreelistBytes what writing the freelist takes.
	FreeBytes, FreelistBytes int64
	// Buckets describes each bucket's tree.
	Buckets []string
}

func pct(a, b int) int {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

// RecordLen is the size of e's record (version 2).
func RecordLen(stream string, e aggregate.Event) int { return recordLen(stream, e) }

// Space reads the SpaceStats of the closed store file at path.
func Space(path string) (SpaceStats, error) {
	st := SpaceStats{Alloc: map[string]int{}, InUse: map[string]int{}}
	fi, err := os.Stat(path)
	if err != nil {
		return st, err
	}
	st.FileBytes = fi.Size()
	// Read-write, so that bbolt loads the freelist (nothing is written).
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return st, err
	}
	defer db.Close()
	st.PageSize = db.Info().PageSize
	ds := db.Stats()
	st.FreeBytes = int64(ds.FreePageN+ds.PendingPageN) * int64(st.PageSize)
	st.FreelistBytes = int64(ds.FreelistInuse)
	err = db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketStreams, bucketNames, bucketIndex} {
			if b := tx.Bucket(name); b != nil {
				bs := b.Stats()
				st.Alloc[string(name)] = bs.BranchAlloc + bs.LeafAlloc
				st.InUse[string(name)] = bs.BranchInuse + bs.LeafInuse
				st.Buckets = append(st.Buckets, fmt.Sprintf("%s: %d keys, depth %d, %d branch pages (%d%% full), %d leaf pages (%d%% full), %d overflow",
					name, bs.KeyN, bs.Depth, bs.BranchPageN, pct(bs.BranchInuse, bs.BranchAlloc), bs.LeafPageN, pct(bs.LeafInuse, bs.LeafAlloc), bs.LeafOverflowN))
			}
		}
		st.HighWater = tx.Size()
		return nil
	})
	return st, err
}

// TxStats returns bbolt's counters of the store's write transactions.
func TxStats(s *Store) bbolt.TxStats { return s.db.Stats().TxStats }
