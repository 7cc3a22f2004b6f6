package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/internal/membudget"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options tune a Store. The zero value is the safe default: every append is
// fsynced before Append returns, appends are group-committed.
type Options struct {
	// MaxAppendBytes bounds the encoded size of one Append's events; a larger
	// append fails with eventstore.ErrInvalid. Zero means 4 MiB.
	MaxAppendBytes int

	// MaxQueuedAppends bounds the appends waiting for the committer. When the
	// queue is full (the disk stalls while requests keep arriving), Append
	// fails at once with eventstore.ErrUnavailable instead of piling up
	// memory. Zero means 16384.
	MaxQueuedAppends int

	// MaxSize caps the file, in bytes: a commit that would grow it further
	// fails, and its appends with eventstore.ErrUnavailable. Zero means no cap.
	MaxSize int

	// InitialMmapSize is the initial size of the memory map, in bytes. A map
	// large enough for the file spares the writer the remaps that wait for
	// every open read transaction. Zero lets bbolt grow the map as needed.
	InitialMmapSize int

	// NoFreelistSync skips writing bbolt's freelist on every commit, which
	// makes commits cheaper and opening slower (the freelist is rebuilt by a
	// scan of the file). Durability of events does not depend on it.
	NoFreelistSync bool

	// LockTimeout bounds the wait for the file lock when another process
	// holds the file open. Zero means 5 seconds.
	LockTimeout time.Duration

	// TrimInterval is how often the pages of the file that the process has
	// read are dropped from its resident memory (see trimResident): every
	// page read through bbolt's memory map otherwise stays counted in the
	// process's RSS, up to the whole file. Zero means every second;
	// negative never.
	TrimInterval time.Duration

	// MappedLimit bounds the process's resident pages of mapped files
	// (membudget.Plan.Mapped): the trimmer also drops the file's pages
	// whenever they pass it (polled every membudget.MappedPollInterval).
	// Zero means no limit; a negative TrimInterval turns this off too.
	MappedLimit int64

	// IndexBufferBytes bounds the memory that holds the stream index
	// entries of recent appends until the committer writes them into the
	// file's index, many to a page (see pending.go; schema 3). More makes
	// an append cheaper on a large log, and Open slower after a crash (it
	// reads the events whose entries were in memory: up to about twice
	// this many bytes of entries, some 100 bytes each). Zero means 16 MiB;
	// negative writes every entry with its event, as schema 2 did.
	IndexBufferBytes int

	// TailBytes bounds the memory that keeps the records of the latest
	// commits for subscribers that have caught up, which then get new
	// events without reading the file (see tail.go). Zero means 8 MiB;
	// negative keeps none (every subscriber reads the file).
	TailBytes int

	// appendVia, when set, replaces the committer: Append hands it the
	// encoded request. The benchmarks' baselines (one transaction per
	// append, bbolt's DB.Batch) are written this way, in export_test.go.
	appendVia func(*Store, *request) (eventstore.AppendResult, error)
	// beforeCommit, when set, runs in the committer before each commit.
	beforeCommit func()
	// afterSubscribeRead, when set, runs in Subscribe after each read, with
	// the number of events read.
	afterSubscribeRead func(n int)
	// recordV1 writes version 1 records (no Body), as the store did before
	// version 2: for benchmarks comparing the two and tests of reading old
	// files.
	recordV1 bool
	// pageSize is the page size of a new file (zero: defaultPageSize).
	pageSize int
	// schema1 and schema2 create a new file in schema 1 or 2 (see
	// schema.go), as the store did before schema 2 or 3: for tests of old
	// files and benchmarks.
	schema1, schema2 bool
	// noScanAdvice turns off the read-ahead and page dropping of scans
	// (see scanRange), for benchmarks comparing with it.
	noScanAdvice bool
	// growBy, when positive, is the fixed step the file grows by (see
	// growStep), for benchmarks comparing with bbolt's default.
	growBy int
}

const (
	defaultMaxAppendBytes   = 4 << 20
	defaultMaxQueuedAppends = 16384
	defaultLockTimeout      = 5 * time.Second
	defaultTailBytes        = 8 << 20
	defaultTrimInterval     = time.Second

	// maxBatchBytes bounds the encoded size of one group commit; one larger
	// append still commits alone.
	maxBatchBytes = 32 << 20
	// readBatch is how many events Subscribe reads per transaction.
	readBatch = 2048

	// defaultPageSize is the page size of a new file (an existing file
	// keeps its own). Records of about 800 bytes fill a leaf of 4 KiB to
	// 87% on average (the room left is often less than the next record);
	// 8 KiB halves that loss, and now that the index is written a sweep at
	// a time, not a random page per append, its larger pages cost nothing
	// measurable (BenchmarkAppendLoaded: 32.3 against 32.0 us of CPU per
	// append, 959 against 1,029 bytes per event; 16 KiB: 34.4 us, 922 B).
	defaultPageSize = 8 << 10

	// The file grows by growFraction of its size when a commit needs more
	// room, at least minGrowStep and at most maxGrowStep (bbolt's default
	// step, which it keeps otherwise: 16 MiB, 84 B per event at 200,000
	// events).
	growFraction = 128
	minGrowStep  = 1 << 20
	maxGrowStep  = 16 << 20
)

// growStep is how much the file grows by, past what a commit needs, when
// the pages in use reach size bytes: 1/128 of it, between 1 and 16 MiB,
// so the room the file holds beyond its pages stays under 1% of it once
// it passes 128 MiB. Each growth costs a truncate and an fsync of the
// file, so a step per commit would be too small.
func growStep(size int64) int {
	return int(min(max(size/growFraction, minGrowStep), maxGrowStep))
}

func (o Options) withDefaults() Options {
	if o.MaxAppendBytes <= 0 {
		o.MaxAppendBytes = defaultMaxAppendBytes
	}
	if o.MaxQueuedAppends <= 0 {
		o.MaxQueuedAppends = defaultMaxQueuedAppends
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = defaultLockTimeout
	}
	if o.TailBytes == 0 {
		o.TailBytes = defaultTailBytes
	}
	if o.TrimInterval == 0 {
		o.TrimInterval = defaultTrimInterval
	}
	if o.IndexBufferBytes == 0 {
		o.IndexBufferBytes = defaultIndexBufferBytes
	}
	return o
}

// Store is an eventstore.Store in one bbolt file. Its methods are safe for
// concurrent use.
type Store struct {
	db     *bbolt.DB
	path   string
	opts   Options
	schema int // of the file (see schema.go)
	// Schema 3: the key of h, and the index entries held in memory, with
	// the error of their last reload (see reloadPending).
	streamKey  [streamKeyLen]byte
	pending    pendingIndex
	pendingErr error

	// mu guards queue and closed.
	mu     sync.Mutex
	queue  []*request
	closed bool

	wake          chan struct{} // capacity 1: the queue may be non-empty
	closing       chan struct{} // closed when Close starts
	committerDone chan struct{} // closed when the committer has exited
	trimmerDone   chan struct{} // closed when the trimmer has exited

	// life guards db against Close: reads (and the benchmarks' direct
	// writes) hold it shared, Close takes it exclusively before closing db.
	life     sync.RWMutex
	dbClosed bool

	// tail keeps the latest commits' records for live subscribers.
	tail tail

	// head is the position of the last durable event; notify is closed and
	// replaced after every commit (see publish).
	head   atomic.Uint64
	notify atomic.Pointer[chan struct{}]

	stats struct {
		appends, events, commits, wrongRevisions, unavailable atomic.Uint64
		tailEvents, fileEvents                                atomic.Uint64
	}
}

var _ eventstore.Store = (*Store)(nil)

// ErrLocked: Open found the file held open by another Store, in this
// process or another (a running server), for longer than
// Options.LockTimeout.
var ErrLocked = errors.New("bolt: file locked by another process")

// Open opens the store in the file at path, creating it if needed. The file
// is locked: a second Open of the same path, in this process or another,
// waits up to opts.LockTimeout and fails.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         opts.LockTimeout,
		NoFreelistSync:  opts.NoFreelistSync,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
		MaxSize:         opts.MaxSize,
		PageSize:        cmp.Or(opts.pageSize, defaultPageSize),
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	var head uint64
	newSchema := schemaVersion
	switch {
	case opts.schema1:
		newSchema = schema1
	case opts.schema2:
		newSchema = schema2
	}
	fm, err := initSchema(db, newSchema)
	s := &Store{
		db:            db,
		path:          path,
		opts:          opts,
		schema:        fm.schema,
		streamKey:     fm.streamKey,
		wake:          make(chan struct{}, 1),
		closing:       make(chan struct{}),
		committerDone: make(chan struct{}),
		trimmerDone:   make(chan struct{}),
	}
	if err == nil {
		err = db.View(func(tx *bbolt.Tx) (err error) {
			if head, err = lastPosition(tx); err != nil || s.schema != schemaVersion {
				return err
			}
			b, err := openBuckets(tx, s.schema)
			if err != nil {
				return err
			}
			return s.pending.load(tx, b, &s.streamKey, head, opts.noScanAdvice)
		})
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	s.head.Store(head)
	s.tail.max = opts.TailBytes
	ch := make(chan struct{})
	s.notify.Store(&ch)
	if opts.appendVia != nil {
		close(s.committerDone)
	} else {
		go s.runCommitter()
	}
	if opts.TrimInterval > 0 {
		go s.runTrimmer(opts.TrimInterval, opts.MappedLimit)
	} else {
		close(s.trimmerDone)
	}
	return s, nil
}

// runTrimmer drops the file's pages from the process's resident memory
// every interval, and whenever the process's resident file pages pass
// mappedLimit (0: no limit), until the store closes.
func (s *Store) runTrimmer(interval time.Duration, mappedLimit int64) {
	defer close(s.trimmerDone)
	membudget.RunTrims(s.closing, membudget.TrimSchedule{Interval: interval, Limit: mappedLimit}, func() {
		_ = s.viewTx(func(tx *bbolt.Tx, _ buckets) error {
			trimResident(tx)
			return nil
		})
	})
}

// Path returns the file the store is in.
func (s *Store) Path() string { return s.path }

// Stats counts what a Store did since it was opened.
type Stats struct {
	// Appends is the number of appends made durable, Events the number of
	// events they held.
	Appends, Events uint64
	// Commits is the number of write transactions committed (one fsync
	// each). With group commit, Appends/Commits is the mean batch size.
	Commits uint64
	// WrongRevisions is the number of appends refused by their expected
	// revision.
	WrongRevisions uint64
	// Unavailable is the number of appends failed with
	// eventstore.ErrUnavailable (failed commit, full queue).
	Unavailable uint64
	// TailEvents and FileEvents count the events Subscribe delivered from
	// the tail of recent commits kept in memory and from the file.
	TailEvents, FileEvents uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Appends:        s.stats.appends.Load(),
		Events:         s.stats.events.Load(),
		Commits:        s.stats.commits.Load(),
		WrongRevisions: s.stats.wrongRevisions.Load(),
		Unavailable:    s.stats.unavailable.Load(),
		TailEvents:     s.stats.tailEvents.Load(),
		FileEvents:     s.stats.fileEvents.Load(),
	}
}

// Append implements eventstore.Store. With group commit (the default) the
// append joins the next write transaction of the committer goroutine, which
// commits everything queued since its previous commit with one fsync.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("bolt: append %q: %w", stream, err)
	}
	r, err := newRequest(ctx, stream, expected, events, s.opts.MaxAppendBytes, s.opts.recordV1, s.schema, &s.streamKey)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if s.opts.appendVia != nil {
		return s.opts.appendVia(s, r)
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return eventstore.AppendResult{}, fmt.Errorf("bolt: append %q: %w", stream, eventstore.ErrClosed)
	case len(s.queue) >= s.opts.MaxQueuedAppends:
		s.mu.Unlock()
		s.stats.unavailable.Add(1)
		return eventstore.AppendResult{}, fmt.Errorf("bolt: append %q: %w: %d appends already waiting for a commit", stream, eventstore.ErrUnavailable, s.opts.MaxQueuedAppends)
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		// Prefer the outcome if it is there: it is the less ambiguous answer.
		select {
		case o := <-r.done:
			return o.res, o.err
		default:
			return eventstore.AppendResult{}, fmt.Errorf("bolt: append %q: waiting for commit: %w", stream, ctx.Err())
		}
	}
}

// unavailable wraps the failure of a write transaction.
func unavailable(stream string, err error) error {
	return fmt.Errorf("bolt: append %q: %w: %w", stream, eventstore.ErrUnavailable, err)
}

// publish records that everything up to pos is durable and wakes every
// subscriber waiting for a commit.
func (s *Store) publish(pos uint64) {
	for {
		cur := s.head.Load()
		if pos <= cur || s.head.CompareAndSwap(cur, pos) {
			break
		}
	}
	ch := make(chan struct{})
	close(*s.notify.Swap(&ch))
}

// changed returns a channel closed at the next publish.
func (s *Store) changed() <-chan struct{} { return *s.notify.Load() }

// view runs fn in a read transaction unless the store is closed.
func (s *Store) view(fn func(buckets) error) error {
	return s.viewTx(func(_ *bbolt.Tx, b buckets) error { return fn(b) })
}

// viewTx is view with the transaction.
func (s *Store) viewTx(fn func(*bbolt.Tx, buckets) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.dbClosed {
		return eventstore.ErrClosed
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx, s.schema)
		if err != nil {
			return err
		}
		return fn(tx, b)
	})
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bolt: read stream %q: %w", stream, err)
	}
	if err := checkStreamName(stream); err != nil {
		return nil, fmt.Errorf("bolt: read stream %q: %w", stream, err)
	}
	var (
		out []eventstore.RecordedEvent
		err error
	)
	if s.schema == schemaVersion {
		out, err = s.readStream3(ctx, stream, from, limit)
	} else {
		out, err = s.readStream(ctx, stream, from, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: read stream %q: %w", stream, err)
	}
	return out, nil
}

// readStream is ReadStream in schemas 1 and 2.
func (s *Store) readStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	err := s.view(func(b buckets) error {
		var (
			c            *bbolt.Cursor
			seek, prefix []byte
		)
		if b.schema == schema1 {
			seek = appendStreamKey(nil, stream, from)
			prefix = seek[:len(seek)-8]
			c = b.streams.Cursor()
		} else {
			v := b.names.Get([]byte(stream))
			if v == nil {
				return nil
			}
			id, _, ok := parseOrd(v)
			if !ok {
				return fmt.Errorf("%w: id of stream %q", errCorrupt, stream)
			}
			prefix = appendOrd(nil, id)
			seek = appendOrd(prefix[:len(prefix):len(prefix)], from)
			c = b.index.Cursor()
		}
		var key [8]byte
		for k, v := c.Seek(seek); k != nil && inStream(b.schema, k, prefix); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			if len(out)%readBatch == readBatch-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			pos, ok := indexPosition(b.schema, v)
			var rec []byte
			if ok {
				rec = b.events.Get(binary.BigEndian.AppendUint64(key[:0], pos))
			}
			if rec == nil {
				return fmt.Errorf("%w: index entry without its event", errCorrupt)
			}
			ev, err := decodeRecord(pos, rec)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// readStream3 is ReadStream in schema 3: the stream's entries in the index,
// then those held in memory (see pending.go), taken before the read
// transaction begins so that none folded meanwhile is missed.
func (s *Store) readStream3(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	h := hashStream(&s.streamKey, stream)
	memFirst, memPos, inMem := s.pending.snapshot(h, from)
	var out []eventstore.RecordedEvent
	err := s.view(func(b buckets) error {
		var key [8]byte
		want := from
		read := func(pos uint64) error {
			if len(out)%readBatch == readBatch-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rec := b.events.Get(binary.BigEndian.AppendUint64(key[:0], pos))
			if rec == nil {
				return fmt.Errorf("%w: index entry without its event", errCorrupt)
			}
			ev, err := decodeRecord(pos, rec)
			if err != nil {
				return err
			}
			// Two streams with one h (see schema.go), or a gap.
			if ev.Stream != stream || ev.Revision != want {
				return fmt.Errorf("%w: index entry %s@%d leads to %s@%d at position %d", errCorrupt, stream, want, ev.Stream, ev.Revision, pos)
			}
			want++
			out = append(out, ev)
			return nil
		}
		c := b.index.Cursor()
		seek := appendOrd(append(make([]byte, 0, hashLen+maxOrd), h[:]...), from)
		for k, v := c.Seek(seek); k != nil && bytes.HasPrefix(k, h[:]); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			rev, n, ok := parseOrd(k[hashLen:])
			if !ok || hashLen+n != len(k) {
				return fmt.Errorf("%w: index key %x", errCorrupt, k)
			}
			if inMem && rev >= memFirst {
				break // the rest is in memory (and may be in the index too)
			}
			pos, ok := indexPosition(b.schema, v)
			if !ok {
				return fmt.Errorf("%w: index value %x", errCorrupt, v)
			}
			if err := read(pos); err != nil {
				return err
			}
		}
		for _, pos := range memPos {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			if err := read(pos); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bolt: read all after %s: %w", after, err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("bolt: read all after %s: %w: limit %d", after, eventstore.ErrInvalid, limit)
	}
	out, err := s.readAll(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("bolt: read all after %s: %w", after, err)
	}
	return out, nil
}

func (s *Store) readAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	first, ok := firstAfter(after)
	if !ok {
		return nil, nil
	}
	var out []eventstore.RecordedEvent
	err := s.viewTx(func(tx *bbolt.Tx, b buckets) error {
		out = make([]eventstore.RecordedEvent, 0, min(limit, readBatch))
		// The pages read are advised (read ahead, then dropped): see
		// scanRange.
		scan := newScanRange(tx, s.opts.noScanAdvice)
		defer scan.done()
		c := b.events.Cursor()
		for k, v := c.Seek(be64(first)); k != nil && len(out) < limit; k, v = c.Next() {
			scan.saw(v)
			if len(out)%readBatch == readBatch-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != 8 {
				return fmt.Errorf("%w: event key of %d bytes", errCorrupt, len(k))
			}
			ev, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// firstAfter returns the first position of this store (where Commit ==
// Prepare) strictly after p, in eventstore.Position order.
func firstAfter(p eventstore.Position) (uint64, bool) {
	if p.Prepare < p.Commit {
		return p.Commit, true
	}
	if p.Commit == ^uint64(0) {
		return 0, false
	}
	return p.Commit + 1, true
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Position{}, fmt.Errorf("bolt: head: %w", err)
	}
	select {
	case <-s.closing:
		return eventstore.Position{}, fmt.Errorf("bolt: head: %w", eventstore.ErrClosed)
	default:
	}
	h := s.head.Load()
	return eventstore.Position{Commit: h, Prepare: h}, nil
}

// Close implements eventstore.Store. Appends already queued are committed;
// subscribers return ErrClosed. The index entries held in memory are
// written into the file (schema 3), so that the next Open reads no event
// again; when that fails (a full disk) it reads them again, and Close does
// not report it.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("bolt: close %s: %w", s.path, eventstore.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	close(s.closing)
	<-s.committerDone
	<-s.trimmerDone
	s.life.Lock()
	s.dbClosed = true
	s.life.Unlock()
	if err := s.db.Close(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("bolt: close %s: %w", s.path, err)
	}
	return nil
}
