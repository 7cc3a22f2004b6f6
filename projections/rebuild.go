package projections

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/filesync"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// replayBatch is how many events a rebuild reads and applies per
// transaction.
const replayBatch = 4096

// convergeSlack: a rebuild pauses the live Runner once a round of catching
// up applied fewer events than this, so the pause is short.
const convergeSlack = replayBatch

// scratchSuffix marks the files rebuilds and audits build beside the
// read-model file; a file with it is never the live one.
const scratchSuffix = ".scratch-"

// openScratch creates a fresh, empty read-model file beside d's, for a
// rebuild or an audit to replay the log into. Its commits are not fsynced
// one by one (a crash loses only a scratch file); sync flushes it. The
// caller removes it with discard unless it was swapped in.
func (d *DB) openScratch(purpose string) (*DB, error) {
	path := d.path + scratchSuffix + purpose + "-" + rand.Text()[:8]
	s, err := Open(path, WithCacheBytes(d.cache.budget), WithMappedLimit(d.mappedLimit), func(o *openOptions) { o.scratch = true })
	if err != nil {
		return nil, err
	}
	s.bdb.NoSync = true
	s.deferWrites = true
	return s, nil
}

// flushAll writes every changed record of the cache (a scratch file's,
// whose writes are deferred), in key order, flushChunk receipts per
// transaction so that a transaction's pages stay few.
func (d *DB) flushAll() error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	c := d.cache
	slices.SortFunc(c.dirtyReceipts, func(a, b *receiptEntry) int { return bytes.Compare(a.key, b.key) })
	all := c.dirtyReceipts
	err := func() error {
		for len(all) > flushChunk {
			c.dirtyReceipts = all[:flushChunk]
			if err := d.bdb.Update(func(tx *bolt.Tx) error {
				var ar arena
				for _, r := range c.dirtyReceipts {
					if err := r.write(tx, &ar); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
			all = all[flushChunk:]
		}
		c.dirtyReceipts = all
		return d.bdb.Update(c.flushSorted)
	}()
	if err != nil {
		d.cache.reset()
		return fmt.Errorf("write the records of %s: %w", d.path, err)
	}
	return nil
}

// flushChunk is how many receipts flushAll writes per transaction.
const flushChunk = 8192

// discard closes a scratch file and removes it.
func (s *DB) discard() {
	s.digests.remove()
	s.digests = nil
	s.stopTrimmer()
	if s.bdb != nil {
		s.bdb.Close()
	}
	os.Remove(s.path)
}

// RemoveScratch removes the scratch files that rebuilds or audits of the
// read-model file at path left behind (a process that crashed during one).
// Call it with the file open in this process (so no other process is
// rebuilding it) and no rebuild or audit running.
func RemoveScratch(path string) error {
	matches, err := filepath.Glob(path + scratchSuffix + "*")
	if err != nil {
		return fmt.Errorf("projections: remove scratch files of %s: %w", path, err)
	}
	var errs []error
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("projections: remove scratch files of %s: %w", path, errors.Join(errs...))
	}
	return nil
}

// catchUpTo applies the log's events after s's checkpoint up to and
// including target (never past it) and returns how many it applied. It
// stops early, with no error, where the log ends.
func catchUpTo(ctx context.Context, store eventstore.Store, s *DB, target eventstore.Position) (int, error) {
	n := 0
	for s.Checkpoint().Less(target) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		batch, err := store.ReadAll(ctx, s.Checkpoint(), replayBatch)
		if err != nil {
			return n, fmt.Errorf("read the log after %s: %w", s.Checkpoint(), err)
		}
		cut := len(batch)
		for i, e := range batch {
			if target.Less(e.Position) {
				cut = i
				break
			}
		}
		if cut == 0 {
			break
		}
		if err := s.Apply(batch[:cut]); err != nil {
			return n, err
		}
		n += cut
		if cut < len(batch) {
			break
		}
	}
	return n, nil
}

// converge brings scratch up to target(), round after round while the
// Runner moves the live read models on, until a round is short. It returns
// how many events it applied.
func converge(ctx context.Context, store eventstore.Store, scratch *DB, target func() eventstore.Position) (int, error) {
	total := 0
	for {
		n, err := catchUpTo(ctx, store, scratch, target())
		total += n
		if err != nil || n < convergeSlack {
			return total, err
		}
	}
}

// RebuildOptions choose what Rebuild rebuilds.
type RebuildOptions struct {
	// Projection is the name of the read model to rebuild (see Names);
	// empty rebuilds them all.
	Projection string
}

// ModelSummary describes one read model: how many keys its buckets hold and
// a SHA-256 over every bucket name, key and value in order, so two read
// models with one summary hold the same bytes.
type ModelSummary struct {
	Name   string `json:"name"`
	Keys   int64  `json:"keys"`
	Digest string `json:"digest"`
}

// RebuildResult is what Rebuild did.
type RebuildResult struct {
	// Projection is the read model rebuilt; empty for all.
	Projection string `json:"projection,omitempty"`
	// Position is the checkpoint the new read models were swapped in at.
	Position eventstore.Position `json:"position"`
	// Events is the number of events replayed.
	Events int64 `json:"events"`
	// Models summarises the read models after the rebuild, as of
	// SummaryPosition (the Runner may have applied more since the swap).
	Models          []ModelSummary      `json:"models"`
	SummaryPosition eventstore.Position `json:"summary_position"`
	Took            time.Duration       `json:"took"`
}

// Rebuild replays the log from its first event into fresh read models and
// puts them in place of the current ones, while the current ones keep
// answering reads and the Runner keeps applying to them.
//
// The new read models are built in a scratch file beside the current one
// and brought, round by round, to the position the Runner has reached.
// Then the Runner is paused for the last few events: the new file is
// brought to exactly the live position and swapped in. With every read
// model rebuilt, the new file replaces the old one (an atomic rename; the
// old file is closed once its last read ends). With one projection named,
// its buckets are copied over the live ones in one transaction instead,
// and the other read models are left as they are. Either way a reader sees
// the old read models or the new ones, never a mix; WaitFor waiters keep
// waiting on the new file (its checkpoint is never behind), and every
// watcher re-reads its view. The Runner resumes on the new read models and
// skips the events they already hold.
//
// With no Runner (an offline rebuild), the read models end at the
// position they were at; catch them up to the log with Runner.CatchUp.
//
// One rebuild or audit runs at a time (ErrBusy). When ctx ends first, the
// current read models are left untouched and the scratch file removed.
func (d *DB) Rebuild(ctx context.Context, store eventstore.Store, opts RebuildOptions) (RebuildResult, error) {
	return d.rebuild(ctx, store, opts, true)
}

// rebuild is Rebuild; without summarize, its result has no Models.
func (d *DB) rebuild(ctx context.Context, store eventstore.Store, opts RebuildOptions, summarize bool) (RebuildResult, error) {
	start := time.Now()
	pt := startPhase()
	res := RebuildResult{Projection: opts.Projection}
	fail := func(err error) (RebuildResult, error) {
		what := "every read model"
		if opts.Projection != "" {
			what = opts.Projection
		}
		return RebuildResult{}, fmt.Errorf("projections: rebuild %s: %w", what, err)
	}
	var only *projection
	if opts.Projection != "" {
		p, ok := lookup(opts.Projection)
		if !ok {
			return fail(fmt.Errorf("%q (have %s): %w", opts.Projection, strings.Join(Names(), ", "), ErrUnknownProjection))
		}
		only = &p
	}
	if !d.admin.TryLock() {
		return fail(ErrBusy)
	}
	defer d.admin.Unlock()

	scratch, err := d.openScratch("rebuild")
	if err != nil {
		return fail(err)
	}
	swapped := false
	defer func() {
		if !swapped {
			scratch.discard()
		}
	}()
	// A projection's buckets are copied at the live position exactly, so
	// its replay must not pass it. Every read model at once may go as far
	// as the log's head: the new file then starts ahead of the old one,
	// and the Runner skips what it already holds.
	target := d.Checkpoint
	if only == nil {
		head, err := store.Head(ctx)
		if err != nil {
			return fail(fmt.Errorf("read the log's head: %w", err))
		}
		target = func() eventstore.Position {
			if live := d.Checkpoint(); head.Less(live) {
				return live
			}
			return head
		}
	}
	// Every read model rebuilt, the bulk build's digests are the new
	// file's, unless more is applied to it (summaries checks).
	scratch.wantDigests = only == nil && summarize
	bulk, err := bulkReplay(ctx, store, scratch, target())
	digests := scratch.digests
	scratch.digests = nil
	defer digests.remove()
	if err != nil {
		return fail(err)
	}
	pt.end("bulk build")
	replayed, err := converge(ctx, store, scratch, target)
	replayed += bulk
	if err != nil {
		return fail(err)
	}
	pt.end("converge")

	// Pause the Runner: the live position stays put until the swap.
	err = func() error {
		d.applyMu.Lock()
		defer d.applyMu.Unlock()
		live := d.Checkpoint()
		n, err := catchUpTo(ctx, store, scratch, live)
		replayed += n
		if err != nil {
			return err
		}
		if got := scratch.Checkpoint(); got.Less(live) && only != nil {
			return fmt.Errorf("the log ends at %s, the read models are at %s: %w", got, live, ErrAheadOfLog)
		}
		// Otherwise the new file is at or past the live position; a new
		// file short of it (read models built from another log) still
		// replaces them: the log is the record.
		if err := scratch.flushAll(); err != nil {
			return err
		}
		pt.end("flush")
		if err := scratch.bdb.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", scratch.path, err)
		}
		pt.end("sync")
		res.Position = scratch.Checkpoint()
		if only == nil {
			if err := d.adopt(scratch); err != nil {
				return err
			}
			swapped = true
			return nil
		}
		return d.replaceBuckets(scratch, *only)
	}()
	if err != nil {
		return fail(err)
	}
	res.Events = int64(replayed)
	pt.end("swap")

	if summarize {
		res.Models, res.SummaryPosition, err = d.summaries(digests)
		if err != nil {
			return fail(err)
		}
	}
	pt.end("summaries")
	res.Took = time.Since(start)
	return res, nil
}

// adopt swaps scratch's file in for d's: it renames it over d's path and
// publishes its checkpoint. d.applyMu is held; scratch is consumed.
func (d *DB) adopt(scratch *DB) error {
	scratch.stopTrimmer() // d's trims the file from now on
	d.fileMu.Lock()
	old := d.bdb
	if err := os.Rename(scratch.path, d.path); err != nil {
		d.fileMu.Unlock()
		return fmt.Errorf("swap in %s: %w", scratch.path, err)
	}
	scratch.bdb.NoSync = old.NoSync // the live file's marker covers it
	d.bdb = scratch.bdb
	scratch.bdb = nil
	// The scratch file's cache holds its records, all written: the live
	// cache's are of the old file.
	d.cache = scratch.cache
	d.publishSwap(scratch.Checkpoint())
	d.fileMu.Unlock()
	// The old file is unlinked; its handle closes now that no read holds it.
	syncErr := filesync.SyncDir(filepath.Dir(d.path))
	if err := old.Close(); err != nil {
		return fmt.Errorf("close the replaced read models: %w", err)
	}
	return syncErr
}

// publishSwap makes a rebuilt file's checkpoint the read models' and tells
// every waiter and watcher (each re-reads its view: the rebuild may have
// changed any). d.fileMu is held.
func (d *DB) publishSwap(p eventstore.Position) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = p
	d.commit.Store(p.Commit)
	d.gen++
	d.touched.reset()
	close(d.changed)
	d.changed = make(chan struct{})
}

// replaceBuckets copies p's buckets from scratch over d's in one write
// transaction. d.applyMu is held and both are at one checkpoint.
func (d *DB) replaceBuckets(scratch *DB, p projection) error {
	// Readers go on meanwhile: they see the transaction whole or not at all.
	d.fileMu.RLock()
	defer d.fileMu.RUnlock()
	err := scratch.bdb.View(func(src *bolt.Tx) error {
		return d.bdb.Update(func(dst *bolt.Tx) error {
			for _, name := range p.stored {
				if err := dst.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
				to, err := dst.CreateBucket(name)
				if err != nil {
					return err
				}
				to.FillPercent = 0.9 // keys arrive in order
				if err := src.Bucket(name).ForEach(func(k, v []byte) error { return to.Put(k, v) }); err != nil {
					return err
				}
			}
			return nil
		})
	})
	// The cache may hold records of the buckets just replaced.
	d.cache.reset()
	if err != nil {
		return fmt.Errorf("copy %s into the live read models: %w", p.name, err)
	}
	d.publishSwap(d.applied)
	return nil
}

// Admin is what an administrative API needs of the read models: audits
// and rebuilds against the log they follow, and waiting for a position.
type Admin struct {
	db    *DB
	store eventstore.Store
}

// NewAdmin returns the Admin of db, which follows store.
func NewAdmin(db *DB, store eventstore.Store) *Admin { return &Admin{db: db, store: store} }

// Audit audits the read models against the log (DB.Audit).
func (a *Admin) Audit(ctx context.Context, opts AuditOptions) (AuditReport, error) {
	return a.db.Audit(ctx, a.store, opts)
}

// Rebuild rebuilds the read models from the log (DB.Rebuild).
func (a *Admin) Rebuild(ctx context.Context, opts RebuildOptions) (RebuildResult, error) {
	return a.db.Rebuild(ctx, a.store, opts)
}

// WaitFor waits for the read models to apply a position (DB.WaitFor).
func (a *Admin) WaitFor(ctx context.Context, pos uint64) error { return a.db.WaitFor(ctx, pos) }
