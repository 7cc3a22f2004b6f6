package privacy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/filesync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The FileStore's buckets.
var (
	bucketKeys      = []byte("keys")      // key id -> wrapped key
	bucketSubjects  = []byte("subjects")  // source \0 id -> current key id
	bucketDestroyed = []byte("destroyed") // key id -> when destroyed (unix ns, big endian)
	bucketForgotten = []byte("forgotten") // source \0 id -> when last forgotten
	bucketMeta      = []byte("meta")      // "pepper" -> wrapped pepper, "watermark" -> log position, "pool" -> key ids
	bucketAlso      = []byte("also")      // source \0 id \0 key id -> nil: a subject's keys besides its current one
	keyPepper       = []byte("pepper")
	keyWatermark    = []byte("watermark")
	// keyPool lists the keys created ahead of need, no subject's yet (see
	// Keyring's pool), as one value of their ids: rewritten whole by each
	// commit, a few KiB, rather than as many random inserts and deletes.
	keyPool = []byte("pool")
)

// FileStore keeps the data keys of the embedded store in a small bbolt
// file of their own (keys.db beside events.db), never in the log: so a
// backup of the log holds sealed values only, and destroying a key
// rewrites a few kilobytes, not the log.
//
// bbolt never overwrites a page in place: a deleted key's bytes would
// stay in a freed page of the file. So Destroy and Rewrap end with a
// compaction: the live records are copied into a new file, which replaces
// the old one, and the old file is overwritten with zeros, synced and
// removed (a hard link "keys.db.shred" to it, made before the swap, lets
// Open finish the job after a crash). What this cannot reach is below
// the file system: a copy-on-write file system or its snapshots, an SSD's
// remapped blocks. See the README's "Personal data".
type FileStore struct {
	path    string
	timeout time.Duration

	mu     sync.RWMutex // write-locked while the file is swapped
	db     *bolt.DB
	closed bool

	// Group commit of Create (see Create).
	cmu        sync.Mutex
	pending    []*pendingCreate
	committing bool
}

// shredSuffix and compactSuffix name the files of a compaction.
const (
	shredSuffix   = ".shred"
	compactSuffix = ".compact"
)

// OpenFileStore opens (creating it if need be) the key file at path. It
// finishes a compaction a crash interrupted. Another process holding the
// file makes it fail after lockTimeout (a second by default).
func OpenFileStore(path string, lockTimeout time.Duration) (*FileStore, error) {
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	s := &FileStore{path: path, timeout: lockTimeout}
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("privacy: open key file %s: %w", path, err)
	}
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	s.db = db
	return s, nil
}

func (s *FileStore) open() (*bolt.DB, error) {
	// The map is sized up front (address space, not memory) so that
	// creating keys does not remap the file as it grows; the freelist is
	// rebuilt at open rather than written with every key.
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout, InitialMmapSize: 64 << 20, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("privacy: open key file %s: held by another process", s.path)
		}
		return nil, fmt.Errorf("privacy: open key file %s: %w", s.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKeys, bucketSubjects, bucketDestroyed, bucketForgotten, bucketMeta, bucketAlso} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("privacy: open key file %s: %w", s.path, err)
	}
	return db, nil
}

// recover finishes what a crash interrupted: a shred link to a replaced
// file is zeroed and removed; a link to the file still in place means the
// swap never happened, so the compaction is done again once open.
func (s *FileStore) recover() error {
	_ = os.Remove(s.path + compactSuffix)
	shred := s.path + shredSuffix
	si, err := os.Stat(shred)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if pi, err := os.Stat(s.path); err == nil && os.SameFile(si, pi) {
		if err := os.Remove(shred); err != nil {
			return err
		}
		db, err := s.open()
		if err != nil {
			return err
		}
		s.db = db
		err = s.compactLocked()
		if s.db != nil {
			s.db.Close()
			s.db = nil
		}
		return err
	}
	return filesync.ZeroAndRemove(shred)
}

func subjectKey(sub Subject) []byte {
	k := make([]byte, 0, len(sub.Source)+1+len(sub.ID))
	return append(append(append(k, sub.Source...), 0), sub.ID...)
}

func (s *FileStore) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *FileStore) update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}

// Current implements Store.
func (s *FileStore) Current(_ context.Context, sub Subject) (rec Record, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		rec, ok = current(tx, sub)
		return nil
	})
	return rec, ok, err
}

func current(tx *bolt.Tx, sub Subject) (Record, bool) {
	id := tx.Bucket(bucketSubjects).Get(subjectKey(sub))
	if len(id) != len(KeyID{}) {
		return Record{}, false
	}
	w := tx.Bucket(bucketKeys).Get(id)
	if w == nil {
		return Record{}, false
	}
	var rec Record
	copy(rec.ID[:], id)
	rec.Wrapped = bytes.Clone(w)
	return rec, true
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, id KeyID) (Record, error) {
	rec := Record{ID: id}
	err := s.view(func(tx *bolt.Tx) error {
		if w := tx.Bucket(bucketKeys).Get(id[:]); w != nil {
			rec.Wrapped = bytes.Clone(w)
			return nil
		}
		if tx.Bucket(bucketDestroyed).Get(id[:]) != nil {
			return fmt.Errorf("privacy: key %s: destroyed: %w", id, ErrForgotten)
		}
		return fmt.Errorf("privacy: key %s: %w", id, ErrUnknownKey)
	})
	return rec, err
}

// Create implements Store. Creations are committed in groups: the first
// caller commits its key and every one queued while it commits in one
// fsynced transaction, the next queued caller the ones that came
// meanwhile, and so on; so N subjects seen at once cost about one fsync,
// not N, and no timer is waited on.
func (s *FileStore) Create(ctx context.Context, sub Subject, rec Record) (Record, error) {
	c := &pendingCreate{sub: sub, rec: rec, done: make(chan struct{})}
	s.cmu.Lock()
	s.pending = append(s.pending, c)
	if s.committing {
		s.cmu.Unlock()
		select {
		case <-c.done:
			return c.out, c.err
		case <-ctx.Done():
			// Committed or not, the caller goes; a later Create finds
			// whatever was.
			return Record{}, ctx.Err()
		}
	}
	s.committing = true
	for len(s.pending) > 0 {
		batch := s.pending
		s.pending = nil
		s.cmu.Unlock()
		s.commitCreates(batch)
		s.cmu.Lock()
	}
	s.committing = false
	s.cmu.Unlock()
	return c.out, c.err
}

// pendingCreate is one Create waiting for its group's commit.
type pendingCreate struct {
	sub  Subject
	rec  Record
	out  Record
	err  error
	done chan struct{}
}

// commitCreates commits a group of creations in one transaction: each
// subject gets its key unless it has one (an earlier one of the group
// included).
func (s *FileStore) commitCreates(batch []*pendingCreate) {
	err := s.update(func(tx *bolt.Tx) error {
		for _, c := range batch {
			c.out = c.rec
			if cur, ok := current(tx, c.sub); ok {
				c.out = cur
				continue
			}
			if err := tx.Bucket(bucketKeys).Put(c.rec.ID[:], c.rec.Wrapped); err != nil {
				return err
			}
			if err := tx.Bucket(bucketSubjects).Put(subjectKey(c.sub), c.rec.ID[:]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, c := range batch {
		if err != nil {
			c.out, c.err = Record{}, err
		}
		close(c.done)
	}
}

func encodeTime(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func decodeTime(b []byte) time.Time {
	if len(b) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

// Destroy implements Store: the key's record is deleted in one
// transaction, then the file is compacted and the old one zeroed.
func (s *FileStore) Destroy(_ context.Context, sub Subject, at time.Time) ([]KeyID, error) {
	var ids []KeyID
	err := s.update(func(tx *bolt.Tx) error {
		sk := subjectKey(sub)
		if id := tx.Bucket(bucketSubjects).Get(sk); len(id) == len(KeyID{}) {
			var k KeyID
			copy(k[:], id)
			ids = append(ids, k)
			if err := tx.Bucket(bucketSubjects).Delete(sk); err != nil {
				return err
			}
		}
		// The keys a crash's recovery found the subject also had (see
		// commitPool).
		also := tx.Bucket(bucketAlso)
		prefix := append(bytes.Clone(sk), 0)
		var stale [][]byte
		c := also.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) == len(prefix)+len(KeyID{}) {
				var id KeyID
				copy(id[:], k[len(prefix):])
				ids = append(ids, id)
			}
			stale = append(stale, bytes.Clone(k))
		}
		for _, k := range stale {
			if err := also.Delete(k); err != nil {
				return err
			}
		}
		for _, k := range ids {
			if err := tx.Bucket(bucketKeys).Delete(k[:]); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDestroyed).Put(k[:], encodeTime(at)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketForgotten).Put(sk, encodeTime(at))
	})
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, s.compact()
}

// DestroyKeys implements KeyDestroyer: one transaction, then the file is
// compacted and the old one zeroed, as for Destroy.
func (s *FileStore) DestroyKeys(_ context.Context, ids []KeyID, at time.Time) ([]KeyID, error) {
	var destroyed []KeyID
	err := s.update(func(tx *bolt.Tx) error {
		keys, subjects := tx.Bucket(bucketKeys), tx.Bucket(bucketSubjects)
		for _, id := range ids {
			if keys.Get(id[:]) == nil {
				continue
			}
			if err := keys.Delete(id[:]); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDestroyed).Put(id[:], encodeTime(at)); err != nil {
				return err
			}
			destroyed = append(destroyed, id)
		}
		if len(destroyed) == 0 {
			return nil
		}
		// Nor is any of them in the pool, or a subject's other key.
		if err := putPool(tx, poolIDs(tx), nil, destroyed); err != nil {
			return err
		}
		also := tx.Bucket(bucketAlso)
		var gone [][]byte
		err := also.ForEach(func(k, _ []byte) error {
			for _, id := range destroyed {
				if bytes.HasSuffix(k, id[:]) {
					gone = append(gone, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range gone {
			if err := also.Delete(k); err != nil {
				return err
			}
		}
		// A subject whose current key is one of them has none now.
		var stale [][]byte
		err = subjects.ForEach(func(k, v []byte) error {
			for _, id := range destroyed {
				if bytes.Equal(v, id[:]) {
					stale = append(stale, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := subjects.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(destroyed) == 0 {
		return destroyed, err
	}
	return destroyed, s.compact()
}

// Forgotten implements Store.
func (s *FileStore) Forgotten(_ context.Context, sub Subject) (time.Time, error) {
	var at time.Time
	err := s.view(func(tx *bolt.Tx) error {
		at = decodeTime(tx.Bucket(bucketForgotten).Get(subjectKey(sub)))
		return nil
	})
	return at, err
}

// Pepper implements Store.
func (s *FileStore) Pepper(_ context.Context, candidate []byte) ([]byte, error) {
	var out []byte
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if p := b.Get(keyPepper); p != nil {
			out = bytes.Clone(p)
			return nil
		}
		out = candidate
		return b.Put(keyPepper, candidate)
	})
	return out, err
}

// Rewrap implements Rewrapper, then compacts the file so that no key
// wrapped by a retired KEK survives in it.
func (s *FileStore) Rewrap(_ context.Context, pepper func([]byte) ([]byte, bool, error), key func(Record) ([]byte, bool, error)) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if p := meta.Get(keyPepper); p != nil {
			nw, ok, err := pepper(bytes.Clone(p))
			if err != nil {
				return fmt.Errorf("the pepper: %w", err)
			}
			if ok {
				if err := meta.Put(keyPepper, nw); err != nil {
					return err
				}
				n++
			}
		}
		keys := tx.Bucket(bucketKeys)
		var changes []Record
		err := keys.ForEach(func(k, v []byte) error {
			var rec Record
			copy(rec.ID[:], k)
			rec.Wrapped = bytes.Clone(v)
			nw, ok, err := key(rec)
			if err != nil {
				return fmt.Errorf("key %s: %w", rec.ID, err)
			}
			if ok {
				changes = append(changes, Record{ID: rec.ID, Wrapped: nw})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range changes {
			if err := keys.Put(c.ID[:], c.Wrapped); err != nil {
				return err
			}
		}
		n += len(changes)
		return nil
	})
	if err != nil || n == 0 {
		return n, err
	}
	return n, s.compact()
}

// compact rewrites the file with its live records only and zeroes the
// old one (see FileStore).
func (s *FileStore) compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.compactLocked(); err != nil {
		return fmt.Errorf("privacy: compact key file %s: %w", s.path, err)
	}
	return nil
}

// compactLocked: s.db open, s.mu held (or s not yet shared). On return
// s.db is open again, on the new file, unless reopening failed.
func (s *FileStore) compactLocked() error {
	tmp := s.path + compactSuffix
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: s.timeout})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	shred := s.path + shredSuffix
	_ = os.Remove(shred)
	if err := os.Link(s.path, shred); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := filesync.SyncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	s.db = nil
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	if err := filesync.SyncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	if err := filesync.ZeroAndRemove(shred); err != nil {
		return err
	}
	db, err := s.open()
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// Shred overwrites the file at path with zeros, syncs it and removes it:
// what receiptd does to a file that held personal data in the clear (the
// read models of a log sealed in place by receiptd privacy seal). As with
// FileStore, what lies below the file system is out of its reach.
func Shred(path string) error { return filesync.ZeroAndRemove(path) }

// Close implements Store.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// poolClaim is a subject's claim on a key of the pool.
type poolClaim struct {
	sub Subject
	id  KeyID
}

// poolIDs returns the ids of the pool's keys.
func poolIDs(tx *bolt.Tx) []KeyID {
	b := tx.Bucket(bucketMeta).Get(keyPool)
	ids := make([]KeyID, 0, len(b)/len(KeyID{}))
	for ; len(b) >= len(KeyID{}); b = b[len(KeyID{}):] {
		var id KeyID
		copy(id[:], b)
		ids = append(ids, id)
	}
	return ids
}

// putPool writes the pool's ids: ids, less those of gone, and add.
func putPool(tx *bolt.Tx, ids []KeyID, add []Record, gone []KeyID) error {
	drop := make(map[KeyID]bool, len(gone))
	for _, id := range gone {
		drop[id] = true
	}
	v := make([]byte, 0, (len(ids)+len(add))*len(KeyID{}))
	for _, id := range ids {
		if !drop[id] {
			v = append(v, id[:]...)
		}
	}
	for _, rec := range add {
		v = append(v, rec.ID[:]...)
	}
	return tx.Bucket(bucketMeta).Put(keyPool, v)
}

// poolState implements poolStore: the log position recorded by the last
// commitPool (Start if none) and the keys of the pool.
func (s *FileStore) poolState() (eventstore.Position, []Record, error) {
	var (
		wm   eventstore.Position
		recs []Record
	)
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keyWatermark); len(b) == 16 {
			wm = eventstore.Position{Commit: binary.BigEndian.Uint64(b), Prepare: binary.BigEndian.Uint64(b[8:])}
		}
		keys := tx.Bucket(bucketKeys)
		for _, id := range poolIDs(tx) {
			if w := keys.Get(id[:]); w != nil {
				recs = append(recs, Record{ID: id, Wrapped: bytes.Clone(w)})
			}
		}
		return nil
	})
	return wm, recs, err
}

// commitPool implements poolStore: in one fsynced transaction it adds
// keys to the pool, records claims (a claimed key leaves the pool and
// becomes its subject's current key, or one of its keys besides the
// current one if it has another; a key destroyed meanwhile is not
// claimed), drops orphans from the pool (keys never to be handed out
// again) and records the log position wm. Inserts go in key order (the
// ids and subjects are random: a leaf page at a time).
func (s *FileStore) commitPool(add []Record, claims []poolClaim, orphans []KeyID, wm eventstore.Position) error {
	add = slices.Clone(add)
	slices.SortFunc(add, func(a, b Record) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	type keyed struct {
		sk []byte
		id KeyID
	}
	cs := make([]keyed, len(claims))
	for i, c := range claims {
		cs[i] = keyed{subjectKey(c.sub), c.id}
	}
	slices.SortFunc(cs, func(a, b keyed) int { return bytes.Compare(a.sk, b.sk) })
	return s.update(func(tx *bolt.Tx) error {
		keys, subjects, also := tx.Bucket(bucketKeys), tx.Bucket(bucketSubjects), tx.Bucket(bucketAlso)
		for _, rec := range add {
			if err := keys.Put(rec.ID[:], rec.Wrapped); err != nil {
				return err
			}
		}
		gone := slices.Clone(orphans)
		for _, c := range cs {
			gone = append(gone, c.id)
			if keys.Get(c.id[:]) == nil {
				continue
			}
			cur := subjects.Get(c.sk)
			switch {
			case cur == nil:
				if err := subjects.Put(c.sk, c.id[:]); err != nil {
					return err
				}
			case !bytes.Equal(cur, c.id[:]):
				if err := also.Put(append(append(c.sk, 0), c.id[:]...), nil); err != nil {
					return err
				}
			}
		}
		if err := putPool(tx, poolIDs(tx), add, gone); err != nil {
			return err
		}
		b := binary.BigEndian.AppendUint64(nil, wm.Commit)
		return tx.Bucket(bucketMeta).Put(keyWatermark, binary.BigEndian.AppendUint64(b, wm.Prepare))
	})
}
