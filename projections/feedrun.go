package projections

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	bolt "go.etcd.io/bbolt"
)

// A bulk build's feed (see feedapply.go). Its appliers apply receipts out
// of log order, so they give their feed to a feedOut instead of the feed
// bucket: the receipt and entity events as feed.Marshal wrote them, and
// each user change as a userOp, at the position of its slot. A feedOut
// holds its records in memory up to its budget, then sorts them by
// position and spills them to a run file. writeFeed merges every run by
// position, replays each user's ops in log order from an empty record
// (the events Apply gives: userOp.events) and writes the feed bucket once,
// in key order.

// Kinds of feed records.
const (
	runEvent  = 0
	runUserOp = 1
)

// feedRecord is one record of a run: a feed event (at its position) or
// a user's change (at the position of its slot).
type feedRecord struct {
	kind byte
	pos  uint64
	body []byte
}

// feedRecordOverhead is what a record costs in memory beyond its body.
const feedRecordOverhead = 48

// feedOut collects a bulk build's feed records; one per goroutine.
type feedOut struct {
	// dir and prefix name its run files; budget bounds its records in
	// memory, in bytes.
	dir, prefix string
	budget      int64
	recs        []feedRecord
	bytes       int64
	runs        []string
	// chunks hold the bodies of recs (the last one is being filled),
	// from pool and back to it once recs are written to a run.
	chunks [][]byte
	pool   *chunkPool
}

func newFeedOut(dir, prefix string, budget int64, pool *chunkPool) *feedOut {
	return &feedOut{dir: dir, prefix: prefix, budget: budget, pool: pool}
}

// feedChunk is the size of the chunks of a feedOut's bodies.
const feedChunk = 256 << 10

// chunkPool recycles the chunks of a bulk build's feedOuts: a build
// derives a feed event (~1 KB) for nearly every log event, and each
// is held only until its feedOut spills, so fresh chunks were ~8.4 GB
// of garbage at 1,000,000 receipts. It keeps at most limit chunks.
type chunkPool struct {
	mu    sync.Mutex
	free  [][]byte
	limit int
}

func newChunkPool(budget int64) *chunkPool {
	return &chunkPool{limit: int(budget/feedChunk) + 4}
}

// get returns an empty chunk of feedChunk bytes.
func (p *chunkPool) get() []byte {
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.free); n > 0 {
			c := p.free[n-1]
			p.free[n-1] = nil
			p.free = p.free[:n-1]
			return c[:0]
		}
	}
	return make([]byte, 0, feedChunk)
}

// put takes back chunks whose bodies are no longer used.
func (p *chunkPool) put(chunks [][]byte) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range chunks {
		if cap(c) == feedChunk && len(p.free) < p.limit {
			p.free = append(p.free, c[:0])
		}
	}
}

// room returns o's chunk being filled with room for n more bytes (a new
// one when it has not): append a body to it and pass it to took.
func (o *feedOut) room(n int) []byte {
	if k := len(o.chunks); k > 0 && cap(o.chunks[k-1])-len(o.chunks[k-1]) >= n {
		return o.chunks[k-1]
	}
	c := []byte(nil)
	if n > feedChunk {
		c = make([]byte, 0, n)
	} else {
		c = o.pool.get()
	}
	o.chunks = append(o.chunks, c)
	return c
}

// took keeps c, the chunk room returned with a body appended from start,
// and returns the body.
func (o *feedOut) took(c []byte, start int) []byte {
	o.chunks[len(o.chunks)-1] = c
	return c[start:len(c):len(c)]
}

func (o *feedOut) add(kind byte, pos uint64, body []byte) error {
	o.recs = append(o.recs, feedRecord{kind: kind, pos: pos, body: body})
	o.bytes += int64(len(body)) + feedRecordOverhead
	if o.bytes > o.budget {
		return o.spill()
	}
	return nil
}

// event records a feed event at pos (its stored form, which o keeps).
func (o *feedOut) event(pos uint64, v []byte) error { return o.add(runEvent, pos, v) }

// userOp records a user's change by the log event at commit.
func (o *feedOut) userOp(commit uint64, source, userID string, op *userOp) error {
	c := o.room(256)
	start := len(c)
	c = appendUserOp(c, source, userID, op)
	return o.add(runUserOp, feed.Pos(commit, op.slot), o.took(c, start))
}

func (o *feedOut) sort() {
	slices.SortFunc(o.recs, func(x, y feedRecord) int { return cmp.Compare(x.pos, y.pos) })
}

// spill writes o's records, sorted, to a new run file.
func (o *feedOut) spill() error {
	if len(o.recs) == 0 {
		return nil
	}
	o.sort()
	name, err := writeRunFile(o.dir, o.prefix+"feed-*", "a feed run", func(w *bufio.Writer) error {
		for _, r := range o.recs {
			writeRecord(w, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.runs = append(o.runs, name)
	clear(o.recs)
	o.recs, o.bytes = o.recs[:0], 0
	o.pool.put(o.chunks)
	clear(o.chunks)
	o.chunks = o.chunks[:0]
	return nil
}

// writeRecord writes a record of a run file (its errors are w's).
func writeRecord(w *bufio.Writer, r feedRecord) {
	var head [binary.MaxVarintLen64 + 9]byte
	n := binary.PutUvarint(head[:], uint64(len(r.body)))
	head[n] = r.kind
	binary.BigEndian.PutUint64(head[n+1:], r.pos)
	w.Write(head[:n+9])
	w.Write(r.body)
}

// remove removes o's run files and drops its records.
func (o *feedOut) remove() {
	for _, name := range o.runs {
		os.Remove(name)
	}
	o.runs, o.recs, o.bytes = nil, nil, 0
}

// feedRun reads one sorted run: a file's or a feedOut's records in memory.
type feedRun struct {
	f    *os.File
	r    *bufio.Reader
	mem  []feedRecord
	next feedRecord
	// buf holds the body of next when it was read from f: reused, so a
	// body read from a file is good until the run's next read (whoever
	// keeps it copies it).
	buf []byte
}

// A merge of run files gives each file a read buffer of the feed's
// budget divided among them, between minRunBuffer and maxRunBuffer; it
// merges at most feedFanIn(budget) files at once (a budget's worth of
// the smallest buffers), so the memory it holds is bounded by the budget
// whatever the number of runs. Past that many runs, writeFeed first
// merges groups of runs into larger ones (mergeRunFiles). The tests that
// set feedSpillBytes to a few KiB merge two to four runs at once, so
// they merge merges.
//
// A bulk build's feed records are about a kilobyte each and its runs a
// few megabytes (feedBudget divided among the workers): at 1,000,000
// receipts (8.9 million feed events) a rebuild had ~2,300 runs, and each
// had held a 64 KiB reader and a 256 KiB arena of bodies, ~750 MB in all
// under a 256 MiB memory_budget, with the collector running back to back.
const (
	minRunBuffer = 4 << 10
	maxRunBuffer = 64 << 10
	// maxFeedRecord bounds a run record's length (a larger one is a
	// corrupt run file, not a record to allocate for).
	maxFeedRecord = 1 << 30
)

// feedFanIn is how many run files a merge reads at once within budget.
func feedFanIn(budget int64) int {
	return int(max(budget/minRunBuffer, 2))
}

// runBuffer is the read buffer of each of n run files merged within
// budget.
func runBuffer(budget int64, n int) int {
	return int(min(max(budget/int64(max(n, 1)), minRunBuffer), maxRunBuffer))
}

// openRun opens a run file with a read buffer of size bytes.
func openRun(name string, size int) (*feedRun, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open a feed run: %w", err)
	}
	return &feedRun{f: f, r: bufio.NewReaderSize(f, size)}, nil
}

// read reads the next record into r.next; false at the end.
func (r *feedRun) read() (bool, error) {
	if r.f == nil {
		if len(r.mem) == 0 {
			return false, nil
		}
		r.next, r.mem = r.mem[0], r.mem[1:]
		return true, nil
	}
	n, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read a feed run: %w", err)
	}
	var head [9]byte
	if _, err := io.ReadFull(r.r, head[:]); err != nil {
		return false, fmt.Errorf("read a feed run: %w", err)
	}
	if n > maxFeedRecord {
		return false, fmt.Errorf("read a feed run: a record of %d bytes: %w", n, errCorrupt)
	}
	if n > uint64(cap(r.buf)) {
		r.buf = make([]byte, n, max(n, 2<<10))
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.r, body); err != nil {
		return false, fmt.Errorf("read a feed run: %w", err)
	}
	r.next = feedRecord{kind: head[0], pos: binary.BigEndian.Uint64(head[1:]), body: body}
	return true, nil
}

// runHeap orders runs by their next record's position.
type runHeap []*feedRun

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].next.pos < h[j].next.pos }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*feedRun)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// advance moves h past its least run's record (which its caller has used
// or copied: the run's next read reuses the buffer): it reads that run's
// next record and restores the heap, or drops the run, closing its file,
// once it has none left. Files still open when a merge ends early are
// closed by whoever opened them.
func (h *runHeap) advance() error {
	r := (*h)[0]
	ok, err := r.read()
	if err != nil {
		return err
	}
	if ok {
		heap.Fix(h, 0)
		return nil
	}
	if r.f != nil {
		r.f.Close()
	}
	heap.Pop(h)
	return nil
}

// mergeRunFiles merges run files, each sorted by position, into a new
// run file in dir (named with prefix), reading each with a buffer of
// size bytes, and returns its name. The records are copied as they are:
// only writeFeed's last merge makes feed events of them.
func mergeRunFiles(names []string, dir, prefix string, size int) (name string, err error) {
	h := make(runHeap, 0, len(names))
	defer func() {
		for _, r := range h {
			r.f.Close()
		}
	}()
	for _, n := range names {
		r, err := openRun(n, size)
		if err != nil {
			return "", err
		}
		ok, err := r.read()
		if err != nil {
			r.f.Close()
			return "", err
		}
		if !ok {
			r.f.Close()
			continue
		}
		h = append(h, r)
	}
	heap.Init(&h)
	return writeRunFile(dir, prefix+"feed-*", "a feed run", func(w *bufio.Writer) error {
		for h.Len() > 0 {
			writeRecord(w, h[0].next)
			if err := h.advance(); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeFeedBatch is how many feed events writeFeed writes per
// transaction. Up to seven batches are held at once (merged, queued,
// written, hashed), each ~1 KB per event: with 8,192 that was ~50 MB the
// collector had to make room for beside the users' records, and a
// rebuild's feed took 5.6-6.4 s at 610,000 events with a 64 MiB
// memory_budget; with 512-2,048 it took 3.0-3.7 s.
const writeFeedBatch = 1024

// writeFeed merges the records of outs by position into s's feed bucket
// (empty: a bulk build starts at the start of the log): their events as
// they are, and each user's ops replayed in log order from an empty
// record, giving the events Apply gives. It holds each user's record
// while it merges. outs' files are removed.
//
// With g, it also hashes every key and value it writes into g, in order.
// The merge, the writes and the hashing each run in a goroutine of their
// own, a batch of writeFeedBatch events apart (two batches in flight).
func (s *DB) writeFeed(outs []*feedOut, g *digester) error {
	var runs []*feedRun
	defer func() {
		for _, r := range runs {
			if r.f != nil {
				r.f.Close()
			}
		}
		for _, o := range outs {
			o.remove()
		}
	}()
	budget := s.feedBudget()
	var files, premerged []string
	defer func() {
		for _, name := range premerged {
			os.Remove(name)
		}
	}()
	for _, o := range outs {
		files = append(files, o.runs...)
	}
	// Merge groups of runs until one merge can read them all.
	for fan := feedFanIn(budget); len(files) > fan; {
		g := min(fan, len(files)-fan+1)
		name, err := mergeRunFiles(files[:g], filepath.Dir(s.path), filepath.Base(s.path)+".", runBuffer(budget, g))
		if err != nil {
			return err
		}
		premerged = append(premerged, name)
		for _, f := range files[:g] {
			os.Remove(f) // merged: the disk holds each record once
		}
		files = append(files[g:], name)
	}
	size := runBuffer(budget, len(files))
	for _, name := range files {
		r, err := openRun(name, size)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	for _, o := range outs {
		o.sort()
		runs = append(runs, &feedRun{mem: o.recs})
	}

	pool := newChunkPool(budget)
	batches := make(chan feedBatch, 2)
	stop := make(chan struct{})
	merged := make(chan error, 1)
	go func() {
		defer close(batches)
		merged <- mergeFeed(runs, pool, func(b feedBatch) bool {
			select {
			case batches <- b:
				return true
			case <-stop:
				return false
			}
		})
	}()
	var hashed chan feedBatch
	var hashErr error
	hashDone := make(chan struct{})
	if g != nil {
		hashed = make(chan feedBatch, 2)
		go func() {
			defer close(hashDone)
			var k [8]byte
			var plain []byte
			for b := range hashed {
				for _, p := range b.events {
					binary.BigEndian.PutUint64(k[:], p.pos)
					// The digest is of the canonical form (canonFeed).
					v, err := canonFeed(plain[:0], k[:], p.v)
					if err != nil {
						v = nil // not written by AppendMarshal: cannot happen
						hashErr = err
					}
					plain = v
					g.kv(k[:], v)
				}
				pool.put(b.chunks)
			}
		}()
	}
	var werr error
	for b := range batches {
		if werr != nil {
			continue // drain
		}
		werr = s.bdb.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketFeed)
			bk.FillPercent = 1
			var k [8]byte // bolt copies keys
			for _, p := range b.events {
				binary.BigEndian.PutUint64(k[:], p.pos)
				if err := bk.Put(k[:], p.v); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case werr != nil:
			close(stop)
		case hashed != nil:
			hashed <- b
		default:
			pool.put(b.chunks)
		}
	}
	if hashed != nil {
		close(hashed)
		<-hashDone
	}
	merr := <-merged
	if werr != nil {
		return werr
	}
	if hashErr != nil {
		return hashErr
	}
	if errors.Is(merr, errFeedStopped) {
		merr = nil
	}
	return merr
}

// errFeedStopped: mergeFeed's batches were refused.
var errFeedStopped = errors.New("projections: the feed's writer stopped")

// feedBatch is a batch of feed events mergeFeed gives: the chunks of
// pool its bodies are in go back to the pool once it is written and
// hashed.
type feedBatch struct {
	events []feedPending
	chunks [][]byte
}

// mergeFeed merges runs by position (see writeFeed) and gives their feed
// events to emit, writeFeedBatch at a time, in key order; emit returns
// false to stop it (errFeedStopped). A batch and its values are emit's.
func mergeFeed(runs []*feedRun, pool *chunkPool, emit func(feedBatch) bool) error {
	h := make(runHeap, 0, len(runs))
	for _, r := range runs {
		ok, err := r.read()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, r)
		}
	}
	heap.Init(&h)

	users := map[string]userRecord{}
	pending := make([]feedPending, 0, writeFeedBatch)
	// arena holds the users' events and the bodies read from run files,
	// in chunks of pool (a batch holds them until it is written and
	// hashed: only ever appended to); chunks, the batch's.
	var arena []byte
	var chunks [][]byte
	room := func(n int) {
		if cap(arena)-len(arena) >= n {
			return
		}
		if arena != nil {
			chunks = append(chunks, arena)
		}
		if n > feedChunk {
			arena = make([]byte, 0, n)
		} else {
			arena = pool.get()
		}
	}
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if arena != nil {
			chunks = append(chunks, arena)
			arena = nil
		}
		if !emit(feedBatch{events: pending, chunks: chunks}) {
			return errFeedStopped
		}
		pending, chunks = make([]feedPending, 0, writeFeedBatch), nil
		return nil
	}
	// Records are at their slots' positions; the feed's are dense: the
	// index among the log event's events (feedPut).
	var commit uint64
	index := 0
	put := func(pos uint64, v []byte) {
		if c := feed.LogPosition(pos); c != commit {
			commit, index = c, 0
		}
		pending = append(pending, feedPending{feed.Pos(commit, index), v})
		index++
	}
	var last uint64
	for n := 0; h.Len() > 0; n++ {
		r := h[0]
		rec := r.next
		if n > 0 && rec.pos <= last {
			return fmt.Errorf("feed records out of order: %d after %d", rec.pos, last)
		}
		last = rec.pos
		switch rec.kind {
		case runEvent:
			v := rec.body
			if r.f != nil { // r's buffer: the batch keeps a copy
				room(len(v))
				start := len(arena)
				arena = append(arena, v...)
				v = arena[start:len(arena):len(arena)]
			}
			put(rec.pos, v)
		case runUserOp:
			source, userID, op, err := decodeUserOp(rec.body)
			if err != nil {
				return fmt.Errorf("feed record at %d: %w", rec.pos, err)
			}
			k := string(key(source, userID))
			before, ok := users[k]
			if !ok {
				before = newUserRecord()
			}
			after := before
			op.apply(&after)
			users[k] = after
			commit := feed.LogPosition(rec.pos)
			err = putUserEvents(func(slot int, ev *feed.Event) error {
				ev.Position = feed.Pos(commit, slot)
				room(feed.MarshalSize(ev))
				start := len(arena)
				arena = feed.AppendMarshal(arena, ev)
				put(ev.Position, arena[start:len(arena):len(arena)])
				return nil
			}, &op, source, userID, commit, &before, &after)
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("feed record at %d: kind %d", rec.pos, rec.kind)
		}
		if len(pending) >= writeFeedBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		if err := h.advance(); err != nil {
			return err
		}
	}
	return flush()
}

// appendUserOp encodes a user's change for a feed run: the user, the
// slot, the times, the credit's anomaly, then the delta as a user record.
func appendUserOp(b []byte, source, userID string, op *userOp) []byte {
	w := benc{b: b}
	w.str(source)
	w.str(userID)
	w.uvarint(uint64(op.slot))
	w.time(op.recordedAt)
	w.bool(op.occurredAt != nil)
	if op.occurredAt != nil {
		w.time(*op.occurredAt)
	}
	w.bool(op.credit != nil)
	if op.credit != nil {
		w.str(op.credit.Kind)
		w.str(op.credit.Detail)
	}
	return appendUserRecord(w.b, &op.delta)
}

// decodeUserOp decodes appendUserOp's encoding.
func decodeUserOp(raw []byte) (source, userID string, op userOp, err error) {
	r := newBdec(raw)
	source, userID = r.str(), r.str()
	op.slot = int(r.uvarint())
	op.recordedAt = r.time()
	if r.bool() {
		t := r.time()
		op.occurredAt = &t
	}
	if r.bool() {
		op.credit = &aggregate.Anomaly{Kind: r.str(), Detail: r.str()}
	}
	if r.err != nil {
		return "", "", userOp{}, r.err
	}
	op.delta, err = decodeUserRecord(r.b[r.i:])
	return source, userID, op, err
}

// feedSpillBytes, if not 0, is a bulk build's budget for its feed
// records in memory (tests set it to force runs); otherwise it is a
// quarter of the record cache's budget.
var feedSpillBytes int64

// startBulkFeed starts a bulk build's feed: s's appliers give theirs to
// s.bulkFeed (bulkFeedDraft), its workers to their own (workerFeed,
// takeWorkerFeed), until finishBulkFeed or dropBulkFeed.
func (s *DB) startBulkFeed() {
	s.dropBulkFeed()
	dir, prefix := filepath.Dir(s.path), filepath.Base(s.path)+"."
	s.bulkFeed = newFeedOut(dir, prefix, s.feedBudget()/2, newChunkPool(s.feedBudget()))
	s.bulkFeedDraftV = feedDraft{out: s.bulkFeed}
}

// feedBudget is a bulk build's budget for its feed records in memory.
func (s *DB) feedBudget() int64 {
	if feedSpillBytes != 0 {
		return feedSpillBytes
	}
	return max(s.cache.budget/4, 1<<20)
}

// bulkFeedDraft is the feed draft of an applier of a bulk build in log
// order (nil outside a bulk build).
func (s *DB) bulkFeedDraft() *feedDraft {
	if s.bulkFeed == nil {
		return nil
	}
	return &s.bulkFeedDraftV
}

// workerFeed is the feedOut of one of a bulk build's workers: half the
// budget shared among them.
func (s *DB) workerFeed(workers int) *feedOut {
	return newFeedOut(s.bulkFeed.dir, s.bulkFeed.prefix, s.feedBudget()/2/int64(max(workers, 1)), s.bulkFeed.pool)
}

// takeWorkerFeed moves a worker's feed records (their bodies copied)
// and runs to s.bulkFeed.
func (s *DB) takeWorkerFeed(w *feedOut) error {
	o := s.bulkFeed
	o.runs = append(o.runs, w.runs...)
	w.runs = nil
	for _, r := range w.recs {
		c := o.room(len(r.body))
		start := len(c)
		if err := o.add(r.kind, r.pos, o.took(append(c, r.body...), start)); err != nil {
			return err
		}
	}
	w.recs = nil
	w.pool.put(w.chunks)
	w.chunks = nil
	return nil
}

// finishBulkFeed writes a bulk build's feed (writeFeed, digested into g
// if not nil).
func (s *DB) finishBulkFeed(g *digester) error {
	o := s.bulkFeed
	if o == nil {
		return nil
	}
	s.bulkFeed, s.bulkFeedDraftV = nil, feedDraft{} // nothing keeps its chunks
	if err := s.writeFeed([]*feedOut{o}, g); err != nil {
		return fmt.Errorf("write the feed: %w", err)
	}
	return nil
}

// dropBulkFeed drops a bulk build's feed (a failed or restarted build).
func (s *DB) dropBulkFeed() {
	if s.bulkFeed != nil {
		s.bulkFeed.remove()
		s.bulkFeed, s.bulkFeedDraftV = nil, feedDraft{}
	}
}

// feedPending is a feed event writeFeed is about to write.
type feedPending struct {
	pos uint64
	v   []byte
}
