package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/filesync"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DB is the read models: every view and the checkpoint of the last event
// applied to them, kept consistent by writing both in one transaction.
//
// A DB is also the indirection a rebuild swaps behind: Rebuild replays the
// log into a new file beside the current one and, once it has caught up,
// replaces the file under the same *DB, so the API keeps serving and the
// Runner keeps applying through one value (see Rebuild).
type DB struct {
	path string

	// applyMu serialises Apply, and lets a rebuild pause the Runner while it
	// brings the new file to the live position and swaps it in.
	applyMu sync.Mutex
	// fileMu guards bdb: reads and Apply hold it shared, a swap exclusively,
	// so no read runs on a file being closed.
	fileMu sync.RWMutex
	bdb    *bolt.DB

	// admin is held by a rebuild or an audit: one at a time (ErrBusy).
	admin sync.Mutex

	mu      sync.Mutex // guards applied, changed, gen and touched
	applied eventstore.Position
	changed chan struct{} // closed and replaced when applied advances or the file is swapped
	commit  atomic.Uint64 // applied.Commit, for lock-free reads
	gen     uint64        // incremented by every swap or in-place rebuild
	touched touchRing     // which views the latest batches changed

	discarded string // schema version of the read models Open discarded
	torn      bool   // Open removed a file left unsynced by a machine restart

	// cache holds decoded records across batches (under applyMu); decoded
	// is Apply's buffer. With deferWrites (a scratch file), changed
	// records are written when they leave the cache or by flushAll, not
	// at every commit.
	cache   *cache
	decoded []decodedEvent
	// feedDraft is Apply's (feedapply.go), kept for its buffers;
	// bulkFeed a bulk build's feed (feedrun.go).
	feedDraft      feedDraft
	bulkFeed       *feedOut
	bulkFeedDraftV feedDraft
	deferWrites    bool
	// wantDigests asks a bulk build of a scratch file to digest what it
	// writes; digests is what it digested (bulkdigest.go).
	wantDigests bool
	digests     *bulkDigests

	// The trimmer (runTrimmer) runs until stopTrim is closed; while
	// readingAll is above 0 it trims every ScratchTrimInterval. trims
	// counts its trims.
	stopTrim, trimDone chan struct{}
	readingAll         atomic.Int32
	trims              atomic.Int64
	// mappedLimit is WithMappedLimit's, passed on to scratch files.
	mappedLimit int64
}

// Open opens (creating if needed) the read-model file at path.
//
// A file written by a version with another read-model schema is not
// migrated: Open discards its read models and checkpoint in the same
// transaction that stamps the new schema, so the Runner rebuilds them from
// the start of the log (DiscardedSchema reports it). Until the rebuild
// passes a position, reads answer as of an earlier one; min_position
// waits for it as usual.
//
// The file is locked while open: Open of a file another process holds
// fails after DefaultLockTimeout (or WithLockTimeout's) with an error
// matching ErrLocked.
//
// The read models are derived data, so commits are not fsynced (on Linux,
// where the machine's boot id tells a process crash from a machine
// crash): a process that dies leaves its commits in the page cache,
// whole, and the next Open resumes from the last checkpoint. While the
// file is open, a marker beside it (path + "-unsynced") holds the boot
// id; Close fsyncs the file and removes it. If Open finds a marker of
// another boot, the machine went down with commits that may never have
// reached the disk, so the file may be torn: Open removes it and the
// Runner rebuilds the read models from the log (DiscardedUnsynced
// reports it).
func Open(path string, opts ...OpenOption) (*DB, error) {
	o := openOptions{lockTimeout: DefaultLockTimeout, cacheBytes: DefaultCacheBytes}
	for _, opt := range opts {
		opt(&o)
	}
	boot := bootID()
	torn := false
	if !o.scratch {
		if m, err := os.ReadFile(unsyncedPath(path)); err == nil && (boot == "" || string(m) != boot) {
			// No process of this boot holds the file: it would have
			// stamped the marker with this boot's id.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("projections: open %s: remove the read models left unsynced by a machine restart: %w", path, err)
			}
			torn = true
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("projections: open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	discarded, err := fileSchema(bdb)
	dropInPlace := false
	if err == nil && discarded != "" {
		var replaced bool
		if bdb, replaced, err = replaceFile(bdb, path, o.lockTimeout); err == nil && !replaced {
			dropInPlace = true // where an open file cannot be renamed over
		}
	}
	if err != nil {
		if bdb != nil {
			bdb.Close()
		}
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	d := &DB{path: path, bdb: bdb, changed: make(chan struct{}), cache: newCache(o.cacheBytes), torn: torn, discarded: discarded}
	if !o.scratch && boot != "" {
		if err := writeSynced(unsyncedPath(path), []byte(boot)); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("projections: open %s: %w", path, err)
		}
		bdb.NoSync = true
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if dropInPlace {
			if err := dropAll(tx); err != nil {
				return fmt.Errorf("discard read models of schema %q: %w", discarded, err)
			}
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
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
	d.stopTrim, d.trimDone = make(chan struct{}), make(chan struct{})
	interval := TrimInterval
	if o.scratch {
		interval = ScratchTrimInterval
	}
	d.mappedLimit = o.mappedLimit
	go d.runTrimmer(interval, o.mappedLimit, d.stopTrim, d.trimDone)
	return d, nil
}

// stopTrimmer stops the trimmer and waits for it (once).
func (d *DB) stopTrimmer() {
	select {
	case <-d.stopTrim:
	default:
		close(d.stopTrim)
	}
	<-d.trimDone
}

// DefaultLockTimeout is how long Open waits for another process to
// release the file: long enough for a restarting server's predecessor to
// exit.
const DefaultLockTimeout = 5 * time.Second

// OpenOption configures Open.
type OpenOption func(*openOptions)

type openOptions struct {
	lockTimeout time.Duration
	cacheBytes  int64
	scratch     bool // a rebuild's or audit's file: no marker, no fsync
	mappedLimit int64
}

// unsyncedPath is the marker of an open file whose commits are not
// fsynced (see Open).
func unsyncedPath(path string) string { return path + "-unsynced" }

// bootID identifies the machine's current boot ("" where unknown: then
// every commit is fsynced).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// writeSynced writes a small file and makes it durable, directory entry
// included.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return filesync.SyncDir(filepath.Dir(path))
}

// WithCacheBytes sets the budget, in bytes, of the cache of decoded
// records the applier keeps across batches (DefaultCacheBytes if not
// given). Rebuilds and audits use as much again for the read models they
// build. It is what a memory budget gives the read models.
func WithCacheBytes(n int64) OpenOption {
	return func(o *openOptions) {
		if n > 0 {
			o.cacheBytes = n
		}
	}
}

// WithMappedLimit bounds the process's resident pages of mapped files
// (membudget.Plan.Mapped): the file's trimmer drops its pages whenever
// they pass n, besides its regular trims (TrimInterval), and so does the
// trimmer of a rebuild's or an audit's scratch file. 0 (the default): no
// limit.
func WithMappedLimit(n int64) OpenOption {
	return func(o *openOptions) {
		if n > 0 {
			o.mappedLimit = n
		}
	}
}

// WithLockTimeout sets how long Open waits for the file's lock (a positive
// duration; DefaultLockTimeout if not given).
func WithLockTimeout(d time.Duration) OpenOption {
	return func(o *openOptions) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// fileSchema returns the read-model schema of the open file if it is
// another version's, "" if it is this version's or the file is new.
func fileSchema(bdb *bolt.DB) (string, error) {
	var v string
	err := bdb.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if s := meta.Get(keySchema); s != nil && string(s) != schemaVersion {
				v = string(s)
			}
		}
		return nil
	})
	return v, err
}

// replaceFile discards the read models of another schema in bdb's file at
// path by putting an empty file in its place (a rename, while bdb still
// holds the old file's lock), and opens that. Deleting their buckets in
// place instead reads every page of the file (at 1,000,000 receipts, ~10
// GB resident and tens of seconds) and leaves it that large. If the
// rename fails (an open file cannot be renamed over on some systems),
// it returns bdb as it was and replaced false.
func replaceFile(bdb *bolt.DB, path string, lockTimeout time.Duration) (_ *bolt.DB, replaced bool, _ error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+scratchSuffix+"discard-*") // RemoveScratch sweeps one a crash left
	if err != nil {
		return bdb, false, nil
	}
	f.Close()
	fresh, err := bolt.Open(f.Name(), 0o600, &bolt.Options{Timeout: lockTimeout})
	if err == nil {
		err = fresh.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return bdb, false, nil
	}
	bdb.Close()
	bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, true, ErrLocked
	}
	return bdb, true, err
}

// DiscardedSchema returns the read-model schema version of the file Open
// found, if Open discarded its read models because this version encodes
// them differently (the Runner then rebuilds them from the log), and ""
// if it kept them. For the server to log.
func (d *DB) DiscardedSchema() string { return d.discarded }

// DiscardedUnsynced reports whether Open removed a read-model file that
// the machine went down with before its commits were fsynced (see Open):
// the Runner rebuilds the read models from the log. For the server to log.
func (d *DB) DiscardedUnsynced() bool { return d.torn }

// Path returns the path of the read-model file.
func (d *DB) Path() string { return d.path }

// Close closes the file. It waits for a rebuild or audit in progress to
// end (cancel its context first).
func (d *DB) Close() error {
	d.stopTrimmer()
	d.admin.Lock()
	defer d.admin.Unlock()
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	if !d.bdb.NoSync {
		return d.bdb.Close()
	}
	// Commits were not fsynced: make them durable, then say so.
	if err := d.bdb.Sync(); err != nil {
		d.bdb.Close()
		return fmt.Errorf("projections: close %s: %w", d.path, err)
	}
	if err := d.bdb.Close(); err != nil {
		return fmt.Errorf("projections: close %s: %w", d.path, err)
	}
	if err := os.Remove(unsyncedPath(d.path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("projections: close %s: %w", d.path, err)
	}
	return filesync.SyncDir(filepath.Dir(d.path))
}

// view runs fn in a read transaction of the current file.
func (d *DB) view(fn func(tx *bolt.Tx) error) error {
	d.fileMu.RLock()
	defer d.fileMu.RUnlock()
	return d.bdb.View(fn)
}

// Checkpoint returns the position of the last event applied.
func (d *DB) Checkpoint() eventstore.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied
}

// WaitFor blocks until the event at commit position pos has been applied,
// or ctx ends (ErrBehind). A rebuild swapping the file in meanwhile never
// moves the checkpoint back.
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

// Key names a view a watcher follows: a receipt (ReceiptKey) or a user's
// balance (UserKey).
type Key string

// ReceiptKey is the Key of a receipt's view.
func ReceiptKey(source, receiptID string) Key { return Key("r\x00" + source + "\x00" + receiptID) }

// UserKey is the Key of a user's balance view (source is the user id
// namespace).
func UserKey(source, userID string) Key { return Key("u\x00" + source + "\x00" + userID) }

// Mark is a moment in the read models' history, for WaitChange: a reader
// takes one before it reads a view.
type Mark struct {
	gen uint64
	pos uint64
}

// Mark returns the read models' current moment. Take it before reading the
// view to watch: the view read then holds at least every change up to it.
func (d *DB) Mark() Mark {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Mark{gen: d.gen, pos: d.applied.Commit}
}

// WaitChange blocks until the view named by k may have changed since the
// moment since: a batch applied after it touched the view, or the file was
// rebuilt, or so many batches were applied that which ones touched it is no
// longer known. It returns the moment it noticed, to read the view at and
// pass to the next call. It may report a change that left the view as it
// was (compare before telling anyone); it never misses one. It returns an
// error wrapping ctx.Err() when ctx ends.
func (d *DB) WaitChange(ctx context.Context, since Mark, k Key) (Mark, error) {
	for {
		d.mu.Lock()
		now := Mark{gen: d.gen, pos: d.applied.Commit}
		changed := since.gen != d.gen || d.touched.touchedSince(since.pos, now.pos, k)
		ch := d.changed
		d.mu.Unlock()
		if changed {
			return now, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return since, fmt.Errorf("projections: wait for a change of %q: %w", strings.ReplaceAll(string(k), "\x00", "/"), ctx.Err())
		}
	}
}

// advance publishes a batch applied after position from up to p that
// touched the views in keys (nil: unknown, maybe all).
func (d *DB) advance(from, p eventstore.Position, keys map[Key]struct{}) {
	d.mu.Lock()
	if from != p {
		d.touched.push(from.Commit, p.Commit, keys)
	}
	d.applied = p
	d.commit.Store(p.Commit)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// Apply applies a batch of events in one transaction together with the new
// checkpoint. Events at or before the checkpoint are skipped, so a batch
// delivered twice is applied once (and a batch a rebuild already holds is
// skipped by the file it swapped in).
func (d *DB) Apply(events []eventstore.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if cap(d.decoded) < len(events) {
		d.decoded = make([]decodedEvent, len(events))
	}
	dec := d.decoded[:len(events)]
	clear(dec)
	decodeEvents(events, dec)
	defer clear(dec)
	return d.applyDecoded(events, dec)
}

// applyDecoded is Apply of events decoded in dec (decodeEvents).
// d.applyMu is held.
func (d *DB) applyDecoded(events []eventstore.RecordedEvent, dec []decodedEvent) error {
	d.fileMu.RLock()
	defer d.fileMu.RUnlock()
	var from, last eventstore.Position
	var touched map[Key]struct{}
	err := d.bdb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cp := decodePosition(meta.Get(keyCheckpoint))
		from = cp
		a := applier{tx: tx, c: d.cache, touched: make(map[Key]struct{}), fd: &d.feedDraft}
		for i, e := range events {
			if !cp.Less(e.Position) {
				continue
			}
			if err := a.apply(e, &dec[i]); err != nil {
				if !errors.Is(err, aggregate.ErrBadEvent) {
					return err
				}
				if err := a.skip(e, err); err != nil {
					return err
				}
			}
			cp = e.Position
		}
		if d.deferWrites {
			if err := d.cache.shrink(tx); err != nil {
				return err
			}
		} else if err := d.cache.flush(tx); err != nil {
			return err
		}
		last = cp
		touched = a.touched
		if len(touched) > maxTouchedKeys {
			touched = nil // too many to remember: every watcher re-reads
		}
		return meta.Put(keyCheckpoint, encodePosition(cp))
	})
	if err != nil {
		d.cache.reset() // it may hold changes the file does not
		return fmt.Errorf("projections: apply batch ending at %s: %w", events[len(events)-1].Position, err)
	}
	if !d.deferWrites {
		d.cache.shrink(nil)
	}
	d.advance(from, last, touched)
	return nil
}

// Receipt returns a receipt's view.
func (d *DB) Receipt(_ context.Context, source, receiptID string) (aggregate.ReceiptView, error) {
	var v aggregate.ReceiptView
	err := d.view(func(tx *bolt.Tx) error {
		var err error
		v, err = receiptView(tx, source, receiptID)
		return err
	})
	if err != nil {
		return aggregate.ReceiptView{}, fmt.Errorf("projections: receipt %s/%s: %w", source, receiptID, err)
	}
	return v, nil
}

// receiptView reads a receipt's record and resolves its view.
func receiptView(tx *bolt.Tx, source, receiptID string) (aggregate.ReceiptView, error) {
	raw := tx.Bucket(bucketReceiptState).Get(key(source, receiptID))
	if raw == nil {
		return aggregate.ReceiptView{}, ErrNotFound
	}
	st, err := decodeReceiptState(raw, source, receiptID)
	if err != nil {
		return aggregate.ReceiptView{}, err
	}
	return st.agg.View(), nil
}

// Balance returns a user's balance view.
func (d *DB) Balance(_ context.Context, source, userID string) (Balance, error) {
	var u userRecord
	err := d.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketUsers).Get(key(source, userID))
		if raw == nil {
			return ErrNotFound
		}
		var err error
		u, err = decodeUserRecord(raw)
		return err
	})
	if err != nil {
		return Balance{}, fmt.Errorf("projections: balance of %s/%s: %w", source, userID, err)
	}
	return u.balance(source, userID), nil
}

// UserReceipts lists a user's receipts, newest first, a page at a time.
// pageToken is "" for the first page or a token this method returned for
// the same user.
func (d *DB) UserReceipts(_ context.Context, source, userID string, pageSize int, pageToken string) ([]aggregate.ReceiptView, string, error) {
	prefix := append(key(source, userID), 0)
	cursor, err := decodePageToken(pageSize, pageToken, prefix)
	if err != nil {
		return nil, "", fmt.Errorf("projections: list receipts of %s/%s: %w", source, userID, err)
	}
	var views []aggregate.ReceiptView
	var next string
	err = d.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get(key(source, userID)) == nil {
			return ErrNotFound
		}
		var err error
		next, err = pageBackward(tx.Bucket(bucketUserReceipts), prefix, cursor, pageSize, func(k, _ []byte) error {
			receiptID := string(k[len(prefix)+8:])
			v, err := receiptView(tx, source, receiptID)
			if err != nil {
				return fmt.Errorf("index names receipt %s: %w", receiptID, err)
			}
			views = append(views, v)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("projections: list receipts of %s/%s: %w", source, userID, err)
	}
	return views, next, nil
}

// Entity returns an entity's view with its timeline (the latest
// MaxTimeline events, oldest first). ErrNotFound if no event of source
// has named the entity of that kind.
func (d *DB) Entity(_ context.Context, source, kind, id string) (Entity, error) {
	if !validKeyPart(source) || !validKeyPart(kind) || id == "" {
		return Entity{}, fmt.Errorf("projections: entity %s/%s/%s: %w", source, kind, id, ErrNotFound)
	}
	var rec entityRecord
	err := d.view(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketEntities), entityKey(source, kind, id), &rec); err != nil {
			return err
		}
		rec.View.Timeline = make([]EntityEvent, 0, min(rec.View.EventCount, MaxTimeline))
		prefix := encodePosition(rec.First)
		c := tx.Bucket(bucketEntityTimeline).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ev EntityEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("timeline entry %x: %w", k, err)
			}
			rec.View.Timeline = append(rec.View.Timeline, ev)
		}
		return nil
	})
	if err != nil {
		return Entity{}, fmt.Errorf("projections: entity %s/%s/%s: %w", source, kind, id, err)
	}
	return rec.View, nil
}

// Entities lists the entities of one source and kind, newest first by the
// position of their first event (an entity keeps its place when later
// events arrive), a page at a time, without their timelines. pageToken is
// "" for the first page or a token this method returned for the same source
// and kind. A kind no event has named lists empty, not ErrNotFound.
func (d *DB) Entities(_ context.Context, source, kind string, pageSize int, pageToken string) ([]Entity, string, error) {
	prefix := entityIndexPrefix(source, kind)
	cursor, err := decodePageToken(pageSize, pageToken, prefix)
	if err == nil && cursor != nil && len(cursor) != len(prefix)+positionLen {
		err = ErrBadPageToken
	}
	if err != nil {
		return nil, "", fmt.Errorf("projections: list entities %s/%s: %w", source, kind, err)
	}
	if !validKeyPart(source) || !validKeyPart(kind) {
		return nil, "", nil
	}
	var views []Entity
	var next string
	err = d.view(func(tx *bolt.Tx) error {
		entities := tx.Bucket(bucketEntities)
		var err error
		next, err = pageBackward(tx.Bucket(bucketEntityIndex), prefix, cursor, pageSize, func(k, v []byte) error {
			var rec entityRecord
			if err := getJSON(entities, entityKey(source, kind, string(v)), &rec); err != nil {
				return fmt.Errorf("index names entity %q: %w", v, err)
			}
			views = append(views, rec.View)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("projections: list entities %s/%s: %w", source, kind, err)
	}
	return views, next, nil
}

// decodePageToken checks a page size and decodes a page token, which must
// name a key under prefix; "" decodes to nil (the first page).
func decodePageToken(pageSize int, token string, prefix []byte) ([]byte, error) {
	if pageSize <= 0 {
		return nil, fmt.Errorf("page size %d: %w", pageSize, ErrBadPageToken)
	}
	if token == "" {
		return nil, nil
	}
	c, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(c) <= len(prefix) || !bytes.HasPrefix(c, prefix) {
		return nil, ErrBadPageToken
	}
	return c, nil
}

// pageBackward visits up to size keys of b under prefix, greatest first,
// starting just before cursor (a key a previous page ended on) or at the
// last key under prefix when cursor is nil. It returns the token of the
// next page: "" when no key under prefix is left.
func pageBackward(b *bolt.Bucket, prefix, cursor []byte, size int, visit func(k, v []byte) error) (string, error) {
	c := b.Cursor()
	from := cursor
	if from == nil {
		from = prefixEnd(prefix)
	}
	k, v := c.Seek(from)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	var last []byte
	for n := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if n == size {
			return base64.RawURLEncoding.EncodeToString(last), nil
		}
		if err := visit(k, v); err != nil {
			return "", err
		}
		last = append(last[:0], k...)
		n++
	}
	return "", nil
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

// validKeyPart reports whether s can be a source or a kind in a key: not
// empty, and free of the 0x00 that separates key parts.
func validKeyPart(s string) bool { return s != "" && !strings.Contains(s, "\x00") }

// entityKey is the key of bucketEntities: source 0x00 kind 0x00 id.
func entityKey(source, kind, id string) []byte {
	k := make([]byte, 0, len(source)+len(kind)+len(id)+2)
	k = append(append(k, source...), 0)
	k = append(append(k, kind...), 0)
	return append(k, id...)
}

// entityIndexPrefix is the prefix of a source's and kind's keys in
// bucketEntityIndex: source 0x00 kind 0x00.
func entityIndexPrefix(source, kind string) []byte {
	return entityKey(source, kind, "")
}

// positionLen is the length of an encoded position.
const positionLen = 16

func encodePosition(p eventstore.Position) []byte {
	b := make([]byte, positionLen)
	binary.BigEndian.PutUint64(b, p.Commit)
	binary.BigEndian.PutUint64(b[8:], p.Prepare)
	return b
}

func decodePosition(b []byte) eventstore.Position {
	if len(b) != positionLen {
		return eventstore.Start
	}
	return eventstore.Position{Commit: binary.BigEndian.Uint64(b), Prepare: binary.BigEndian.Uint64(b[8:])}
}

// dropAll deletes every bucket of the file, known to this version or not.
func dropAll(tx *bolt.Tx) error {
	var names [][]byte
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return err
	}
	for _, n := range names {
		if err := tx.DeleteBucket(n); err != nil {
			return err
		}
	}
	return nil
}
