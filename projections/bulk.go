package projections

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// A rebuild's bulk build. Replaying the whole log into a scratch file
// through Apply would keep every record the log touches in the cache or,
// past its budget, write records out and read them back as the log
// returns to them. Instead, bulkBuild reads the log once, decoding on
// every core, and sorts its events in two:
//
//   - a receipt's events (in its own stream, valid: see validStage) become
//     ops, compact binary copies of what applying them needs, kept in
//     memory or, past the budget, in spill files by partition (a hash of
//     the receipt);
//   - every other event (enrolments, credits, entities, quarantine, events
//     that cannot be applied) is applied as it comes, in log order, to
//     the scratch file as Apply would.
//
// Then, partition by partition, it sorts the ops by receipt (a receipt's
// ops stay in log order) and applies them receipt by receipt on every
// core, each worker a contiguous range of receipts with its own users and
// statistics; a receipt's record is final after its last op, and is
// written once, in key order. Users and statistics are sums over receipts
// (plus what the other events add), so the workers' are added to the
// scratch file's at the end; the index holds each receipt's final user.
// The one thing that depends on the order of receipts is a ledger entry's
// running Total: every entry is collected and the Totals are summed in key
// (user, log) order before they are written.
//
// Per-receipt derivations keyed by the log position are made where a
// worker applies an op (bulkWorker.run): the op restores the event's
// position and recorded time (decodeOp), and what a worker derives is
// collected per worker, as its ledger entries are (bulkOut), and written
// in key order at the end; the feed's events (issue 15) are made there
// (feedEnd, feedrun.go).
//
// An event outside its receipt's or entity's stream, or a receipt event
// validStage let through that applying refuses, makes the bulk build give
// way to a replay in log order (Apply). TestDigestsOfAnOlderVersionsLog
// and TestBulkBuildMatchesOlderDigests check the result against digests of
// an older version's rebuild.

// bulkReplay builds s, a scratch file at the start of the log, up to and
// including target, and returns the number of events it applied.
func bulkReplay(ctx context.Context, store eventstore.Store, s *DB, target eventstore.Position) (int, error) {
	if !s.deferWrites || s.Checkpoint() != eventstore.Start {
		return 0, nil
	}
	n, err := s.bulkBuild(ctx, store, target, 0)
	if errors.Is(err, errForeignStream) || errors.Is(err, aggregate.ErrBadEvent) {
		// Replay in log order instead (converge, from the start).
		s.digests.remove()
		s.digests = nil
		return 0, s.clear()
	}
	return n, err
}

// errForeignStream: an event of a receipt or an entity in another
// stream than the receipt's or entity's own; the bulk build gives way to
// a replay in log order.
var errForeignStream = errors.New("projections: an event outside its receipt's or entity's stream")

// inOwnStream reports whether a decoded receipt or entity event is in
// its receipt's or entity's stream (other events may be in any).
func inOwnStream(e eventstore.RecordedEvent, d *decodedEvent) bool {
	switch {
	case d.stage != nil:
		return isStream(e.Stream, aggregate.CategoryReceipt, d.stage.Source, d.stage.ReceiptID)
	case d.entity != nil:
		return isStream(e.Stream, d.entity.Kind, d.entity.Source, d.entity.EntityID)
	}
	return true
}

// isStream reports whether stream is aggregate.StreamID(category, source,
// id), without making it.
func isStream(stream, category, source, id string) bool {
	n := len(category) + 1 + len(source) + 1
	return len(stream) == n+len(id) &&
		stream[:len(category)] == category && stream[len(category)] == '-' &&
		stream[len(category)+1:n-1] == source && stream[n-1] == '.' && stream[n:] == id
}

// validStage reports whether applying a receipt event cannot fail as a
// bad event (aggregate.ErrBadEvent): the checks stageRecorded and
// aggregate.Receipt.Add make before they change anything.
func validStage(e eventstore.RecordedEvent, d *decodedEvent) bool {
	f := d.stage
	return f.Source != "" && f.ReceiptID != "" && stageIndex(f.Stage) >= 0 && f.BodySHA256 != "" &&
		(f.OccurredAt == nil || timeInJSONRange(*f.OccurredAt)) && timeInJSONRange(receivedAt(e, d)) && ledgerTimesInRange(e, d)
}

// bulkOut collects what a bulk build's appliers would write to buckets
// whose keys do not follow the receipts': ledger entries (their Totals
// summed at the end) and the index.
type bulkOut struct {
	ledger []keyValue
	index  [][]byte
	// inProgress holds the keys of bucketInProgress (overdue.go): each
	// receipt's final view's, if it is in progress.
	inProgress [][]byte
	bytes      int64
}

type keyValue struct{ k, v []byte }

func compareKVs(x, y keyValue) int { return bytes.Compare(x.k, y.k) }

func (o *bulkOut) addLedger(k []byte, e *LedgerEntry) {
	v := appendLedgerEntry(nil, e)
	o.ledger = append(o.ledger, keyValue{k, v})
	o.bytes += int64(len(k) + len(v) + 48)
}

// The op of a receipt event: the receipt's source and id, the event's
// position and recorded time, its stage and fact (benc.fact), and the
// metadata a ledger entry shows (EventMeta), or none.
const (
	opMeta = 1 << iota
	opCorrection
	opMetaHash
)

// appendOp appends e's op to b, length-prefixed.
func appendOp(b []byte, e *eventstore.RecordedEvent, d *decodedEvent) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // the length, filled in below
	w := benc{b: b, strs: make([]string, 0, 8)}
	f := d.stage
	w.str(f.Source)
	w.str(f.ReceiptID)
	w.uvarint(e.Position.Commit)
	w.uvarint(e.Position.Prepare)
	w.time(e.RecordedAt)
	w.byte(byte(stageIndex(f.Stage)))
	w.fact(f)
	var flags uint64
	if d.metaErr == nil {
		flags |= opMeta
		if d.meta.Correction {
			flags |= opCorrection
		}
		if d.meta.BodySHA256 != "" {
			flags |= opMetaHash
		}
	}
	w.uvarint(flags)
	if flags&opMeta != 0 {
		m := &d.meta
		w.str(m.ProviderEventType)
		w.str(m.DeliveryID)
		w.time(m.ReceivedAt)
		w.str(m.Scheme)
		w.str(m.KeyID)
		if flags&opMetaHash != 0 {
			w.hash(m.BodySHA256)
		}
	}
	binary.LittleEndian.PutUint32(w.b[start:], uint32(len(w.b)-start-4))
	return w.b
}

// opEstimate is about the size of an op in bytes (the bench's log: 213).
const opEstimate = 256

// op is an op in a partition's buffer: its receipt's key, its place in
// the log, and where its fields start.
type op struct {
	key  string // source 0x00 receipt id
	seq  int    // order of arrival (log order)
	body []byte // the op without its length
}

// decodeOp decodes an op into what stageRecorded takes.
func decodeOp(o *op, e *eventstore.RecordedEvent, d *decodedEvent, f *aggregate.StageRecorded) error {
	r := newBdec(o.body)
	r.strs = make([]string, 0, 8)
	*f = aggregate.StageRecorded{Source: r.str(), ReceiptID: r.str()}
	e.Position.Commit, e.Position.Prepare = r.uvarint(), r.uvarint()
	e.RecordedAt = r.time()
	si := int(r.byte())
	if si >= numStages {
		r.fail()
		si = 0
	}
	f.Stage = aggregate.Stages[si]
	r.fact(f)
	*d = decodedEvent{stage: f, metaErr: errNoMeta}
	flags := r.uvarint()
	if flags&opMeta != 0 {
		m := &d.meta
		d.metaErr = nil
		m.Correction = flags&opCorrection != 0
		m.ProviderEventType, m.DeliveryID = r.str(), r.str()
		m.ReceivedAt = r.time()
		m.Scheme, m.KeyID = r.str(), r.str()
		if flags&opMetaHash != 0 {
			m.BodySHA256 = r.hash()
		}
	}
	if r.err == nil && !r.done() {
		r.fail()
	}
	return r.err
}

// errNoMeta stands for the metadata an op's event did not decode.
var errNoMeta = errors.New("projections: no metadata")

// opKey returns the key of an op's receipt (source 0x00 receipt id),
// reading only its first two fields (as bdec.str reads them, without
// copying the op).
func opKey(body []byte) (string, error) {
	source, n := opStr(body, nil)
	if n < 0 {
		return "", fmt.Errorf("%w: op key", errCorrupt)
	}
	id, m := opStr(body[n:], source)
	if m < 0 {
		return "", fmt.Errorf("%w: op key", errCorrupt)
	}
	return string(source) + "\x00" + string(id), nil
}

// opStr reads a string of benc.str at the start of b, where the one
// string before it (if any) was prev, and returns it and the bytes it
// took (-1: corrupt).
func opStr(b, prev []byte) ([]byte, int) {
	x, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, -1
	}
	if x&1 == 1 {
		if x>>1 != 0 || len(prev) == 0 {
			return nil, -1
		}
		return prev, n
	}
	if x>>1 > uint64(len(b)-n) {
		return nil, -1
	}
	return b[n : n+int(x>>1)], n + int(x>>1)
}

// partitionOf returns the partition of a receipt's ops.
func partitionOf(hash uint32, parts int) int { return int(hash % uint32(parts)) }

func keyHash(source, receiptID string) uint32 {
	return keyHashBytes([]byte(source), []byte(receiptID))
}

// keyHashBytes is keyHash of source and receiptID's bytes: FNV-1a of
// source 0x00 receipt id.
func keyHashBytes(source, receiptID []byte) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for _, c := range source {
		h = (h ^ uint32(c)) * prime
	}
	h *= prime // ^ 0
	for _, c := range receiptID {
		h = (h ^ uint32(c)) * prime
	}
	return h
}

// opPartition holds a partition's ops: in memory, in chunks of about
// opChunk bytes (never copied to grow), or past the budget in a spill file
// beside the scratch file.
type opPartition struct {
	bufs [][]byte
	file *os.File
	w    *bufio.Writer
}

// opChunk is the size of an in-memory partition's chunks.
const opChunk = 1 << 20

func (p *opPartition) add(o []byte) error {
	if p.w != nil {
		_, err := p.w.Write(o)
		return err
	}
	if n := len(p.bufs); n == 0 || cap(p.bufs[n-1])-len(p.bufs[n-1]) < len(o) {
		p.bufs = append(p.bufs, make([]byte, 0, max(opChunk, len(o))))
	}
	last := &p.bufs[len(p.bufs)-1]
	*last = append(*last, o...)
	return nil
}

// spill moves the partition to a new spill file beside path.
func (p *opPartition) spill(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+scratchSuffix+"spill-*")
	if err != nil {
		return fmt.Errorf("create a spill file: %w", err)
	}
	p.file, p.w = f, bufio.NewWriterSize(f, 256<<10)
	for _, b := range p.bufs {
		if _, err := p.w.Write(b); err != nil {
			return fmt.Errorf("write a spill file: %w", err)
		}
	}
	p.bufs = nil
	return nil
}

// load returns the partition's ops, reading its spill file: chunks of
// whole ops.
func (p *opPartition) load() ([][]byte, error) {
	if p.file == nil {
		return p.bufs, nil
	}
	if err := p.w.Flush(); err != nil {
		return nil, fmt.Errorf("write a spill file: %w", err)
	}
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(p.file)
	if err != nil {
		return nil, fmt.Errorf("read a spill file: %w", err)
	}
	return [][]byte{b}, nil
}

func (p *opPartition) remove() {
	if p.file != nil {
		p.file.Close()
		os.Remove(p.file.Name())
		p.file, p.w = nil, nil
	}
	p.bufs = nil
}

// bulkJob is a batch of the log on its way through the bulk build's
// decoders.
type bulkJob struct {
	events []eventstore.RecordedEvent
	dec    []decodedEvent
	// ops holds the ops of the batch's receipt events, one after another;
	// opAt[i] is the end of event i's op in ops (equal to the previous
	// end: no op), hashes[i] its receipt's hash.
	ops    []byte
	opAt   []int
	hashes []uint32
	err    error
	done   chan struct{}
}

// prepare decodes a batch and makes the ops of its receipt events.
func (j *bulkJob) prepare() {
	defer close(j.done)
	j.dec = make([]decodedEvent, len(j.events))
	j.opAt = make([]int, len(j.events))
	j.hashes = make([]uint32, len(j.events))
	j.ops = make([]byte, 0, len(j.events)*opEstimate)
	for i := range j.events {
		e, d := &j.events[i], &j.dec[i]
		decodeEvent(*e, d)
		if d.err == nil && !inOwnStream(*e, d) {
			j.err = fmt.Errorf("%s event %s at %s in stream %s: %w", e.Type, e.ID, e.Position, e.Stream, errForeignStream)
			return
		}
		if d.err == nil && d.stage != nil && validStage(*e, d) {
			j.ops = appendOp(j.ops, e, d)
			j.hashes[i] = keyHash(d.stage.Source, d.stage.ReceiptID)
			d.stage, d.meta = nil, aggregate.Metadata{} // the op holds them now
		}
		j.opAt[i] = len(j.ops)
	}
}

// bulkBuild builds the scratch file s from the start of the log up to and
// including target (see the notes above), with the ops in at least parts
// partitions (0: as the budget needs), and returns the number of events
// it applied.
func (s *DB) bulkBuild(ctx context.Context, store eventstore.Store, target eventstore.Position, parts int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &bulkBuilder{s: s, budget: s.cache.budget, out: &bulkOut{}, pt: startPhase()}
	for _, r := range []*kvRuns{&b.records, &b.index, &b.inProgress, &b.ledger} {
		r.path = s.path
	}
	defer b.removeRuns()
	s.digests.remove()
	s.digests = nil
	if s.wantDigests {
		b.dg = newBulkDigests()
		b.receiptChanges = s.cache.receiptChanges
		defer func() {
			if s.digests != b.dg {
				b.dg.remove()
			}
		}()
	}
	s.startBulkFeed()
	defer s.dropBulkFeed()
	b.parts = make([]*opPartition, max(parts, 1))
	for i := range b.parts {
		b.parts[i] = &opPartition{}
	}
	defer func() {
		for _, p := range b.parts {
			p.remove()
		}
	}()
	if parts > 1 {
		for _, p := range b.parts {
			if err := p.spill(s.path); err != nil {
				return 0, err
			}
		}
		b.spilled = true
	}

	// Read the log in one goroutine, decode in as many as there are cores,
	// and take the batches in log order here.
	jobs := make(chan *bulkJob, runtime.GOMAXPROCS(0))
	ordered := make(chan *bulkJob, 2*runtime.GOMAXPROCS(0))
	readErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(jobs)
		readErr <- readLog(ctx, store, target, func(batch []eventstore.RecordedEvent) error {
			j := &bulkJob{events: batch, done: make(chan struct{})}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case ordered <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range jobs {
				j.prepare()
			}
		})
	}
	defer wg.Wait()
	n, last := 0, eventstore.Start
	var err error
	var waited, taking time.Duration // traced (trace.go)
	var t time.Time
	if traceRebuild {
		t = time.Now()
	}
	for j := range ordered {
		<-j.done
		if traceRebuild {
			waited += time.Since(t)
			t = time.Now()
		}
		if err == nil {
			err = j.err
		}
		if err == nil {
			err = b.take(j, target)
		}
		if traceRebuild {
			taking += time.Since(t)
			t = time.Now()
		}
		if err != nil {
			cancel()
			continue // drain
		}
		n += len(j.events)
		last = j.events[len(j.events)-1].Position
	}
	if rerr := <-readErr; err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		s.cache.reset()
		return 0, err
	}
	if traceRebuild {
		traceMu.Lock()
		fmt.Fprintf(os.Stderr, "rebuild-trace read: the taker waited %.1f ms for decoded batches, took them in %.1f ms\n", ms1(waited), ms1(taking))
		traceMu.Unlock()
	}
	b.pt.end("read+decode+take")
	if err := b.applyOps(ctx); err != nil {
		s.cache.reset()
		return 0, err
	}
	if err := b.finish(last); err != nil {
		s.cache.reset()
		return 0, err
	}
	if b.dg != nil {
		b.dg.at = last
		s.digests = b.dg
	}
	return n, nil
}

// readLog calls fn with the log's events after the start up to and
// including target, a batch at a time.
func readLog(ctx context.Context, store eventstore.Store, target eventstore.Position, fn func([]eventstore.RecordedEvent) error) error {
	after := eventstore.Start
	for after.Less(target) {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := store.ReadAll(ctx, after, replayBatch)
		if err != nil {
			return fmt.Errorf("read the log after %s: %w", after, err)
		}
		cut := len(batch)
		for i, e := range batch {
			if target.Less(e.Position) {
				cut = i
				break
			}
		}
		if cut == 0 {
			return nil
		}
		if err := fn(batch[:cut]); err != nil {
			return err
		}
		after = batch[cut-1].Position
		if cut < len(batch) {
			return nil
		}
	}
	return nil
}

// bulkBuilder is the state of a bulk build.
type bulkBuilder struct {
	s       *DB
	budget  int64
	parts   []*opPartition
	spilled bool
	opBytes int64
	// out collects the ledger and the index; past a quarter of the
	// budget they go to sorted runs (writeOutIfLarge), as the receipts'
	// records of a spilled build do, partition by partition: the end of
	// the build writes each of those buckets once, in key order
	// (kvrun.go).
	out                                *bulkOut
	records, index, inProgress, ledger kvRuns
	// dg, if not nil, takes the digests of what the build writes
	// (bulkdigest.go).
	dg             *bulkDigests
	receiptChanges int64 // s.cache.receiptChanges at the start
	// pt times the build's phases (trace.go).
	pt phaseTimer
}

// take routes a decoded batch: its receipt ops to their partitions, its
// other events applied to the scratch file now, in log order.
func (b *bulkBuilder) take(j *bulkJob, target eventstore.Position) error {
	from := 0
	var rest []int
	for i := range j.events {
		if j.opAt[i] == from {
			rest = append(rest, i)
			continue
		}
		if err := b.parts[partitionOf(j.hashes[i], len(b.parts))].add(j.ops[from:j.opAt[i]]); err != nil {
			return err
		}
		from = j.opAt[i]
	}
	b.opBytes += int64(len(j.ops))
	if len(rest) > 0 {
		s := b.s
		s.applyMu.Lock()
		err := s.bdb.Update(func(tx *bolt.Tx) error {
			a := applier{tx: tx, c: s.cache, bulk: b.out, fd: s.bulkFeedDraft()}
			for _, i := range rest {
				if err := a.apply(j.events[i], &j.dec[i]); err != nil {
					if !errors.Is(err, aggregate.ErrBadEvent) {
						return err
					}
					if err := a.skip(j.events[i], err); err != nil {
						return err
					}
				}
			}
			return s.cache.shrink(tx)
		})
		if b.dg != nil && !b.dg.noReceipts && s.cache.receiptChanges > b.receiptChanges {
			// A receipt's record changed here (validStage missed a
			// check): the records are not the workers' alone.
			b.dg.dropReceipts()
		}
		s.applyMu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := b.writeOutIfLarge(); err != nil {
		return err
	}
	if !b.spilled && b.opBytes > b.budget {
		return b.spill(j.events[len(j.events)-1].Position, target)
	}
	return nil
}

// spill moves the ops to spill files, in as many partitions as the part
// of the log read so far (up to at) says the whole log needs, each about
// half the budget: a partition's ops are live while its workers run,
// beside their users and records and the record cache, and with whole-
// budget partitions the live heap sat at 154-187 MB under the 240 MiB Go
// limit of a 256 MiB memory_budget, the collector running every 30-60 MB
// allocated. At 1,000,000 receipts (6.1M events, 32 partitions then, 64
// now) the workers took 81-97 s of a 4-4.75 min rebuild, 68 s with half
// as large partitions. A log whose ops fit the budget is not spilled.
func (b *bulkBuilder) spill(at, target eventstore.Position) error {
	parts := 2
	if at.Commit > 0 && target.Commit > at.Commit {
		need := float64(target.Commit) / float64(at.Commit) * float64(b.opBytes) / float64(b.budget/2) * 1.3
		for float64(parts) < need && parts < maxParts {
			parts *= 2
		}
	}
	old := b.parts[0].bufs
	b.parts[0].bufs = nil
	b.parts = make([]*opPartition, parts)
	for i := range b.parts {
		b.parts[i] = &opPartition{}
		if err := b.parts[i].spill(b.s.path); err != nil {
			return err
		}
	}
	b.spilled = true
	for _, buf := range old {
		for len(buf) > 0 {
			n := int(binary.LittleEndian.Uint32(buf))
			o := buf[:4+n]
			buf = buf[4+n:]
			source, i := opStr(o[4:], nil)
			if i < 0 {
				return fmt.Errorf("an op: %w", errCorrupt)
			}
			id, j := opStr(o[4+i:], source)
			if j < 0 {
				return fmt.Errorf("an op: %w", errCorrupt)
			}
			if err := b.parts[partitionOf(keyHashBytes(source, id), parts)].add(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxParts bounds the partitions of a bulk build.
const maxParts = 256

// applyOps applies every partition's ops, receipt by receipt, and writes
// their records.
func (b *bulkBuilder) applyOps(ctx context.Context) error {
	for _, p := range b.parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf, err := p.load()
		if err != nil {
			return err
		}
		if err := b.applyPartition(buf); err != nil {
			return err
		}
		p.remove()
	}
	return nil
}

// applyPartition applies one partition's ops (chunks of whole ops) on
// every core.
func (b *bulkBuilder) applyPartition(bufs [][]byte) error {
	count := 0
	for _, buf := range bufs {
		for len(buf) >= 4 {
			count++
			buf = buf[min(len(buf), 4+int(binary.LittleEndian.Uint32(buf))):]
		}
	}
	ops := make([]op, 0, count)
	i := 0
	for _, buf := range bufs {
		for ; len(buf) > 0; i++ {
			if len(buf) < 4 {
				return fmt.Errorf("an op: %w", errCorrupt)
			}
			n := int(binary.LittleEndian.Uint32(buf))
			if n > len(buf)-4 {
				return fmt.Errorf("an op: %w", errCorrupt)
			}
			body := buf[4 : 4+n]
			k, err := opKey(body)
			if err != nil {
				return fmt.Errorf("an op: %w", err)
			}
			ops = append(ops, op{key: k, seq: i, body: body})
			buf = buf[4+n:]
		}
	}
	if len(ops) == 0 {
		return nil
	}
	slices.SortFunc(ops, func(x, y op) int {
		if c := cmp.Compare(x.key, y.key); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	b.pt.end("ops: index+sort")
	// Contiguous ranges of receipts, one per worker.
	workers := min(runtime.GOMAXPROCS(0), max(len(ops)/1024, 1))
	bounds := []int{0}
	for w := 1; w < workers; w++ {
		i := max(len(ops)*w/workers, bounds[len(bounds)-1])
		for i < len(ops) && i > 0 && ops[i].key == ops[i-1].key {
			i++
		}
		bounds = append(bounds, i)
	}
	bounds = append(bounds, len(ops))
	results := make([]*bulkWorker, workers)
	digest := b.dg != nil && !b.dg.noReceipts
	if digest && len(b.parts) > 1 {
		// The partitions' receipts are not in key order one after another.
		b.dg.dropReceipts()
		digest = false
	}
	for w := range workers {
		results[w] = &bulkWorker{c: newCache(1 << 62), out: &bulkOut{}, feed: b.s.workerFeed(workers)}
		if digest {
			dg, err := newWorkerDigest(b.s.path)
			if err != nil {
				for _, r := range results[:w] {
					r.dg.remove()
				}
				return err
			}
			results[w].dg = dg
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { results[w].run(ops[bounds[w]:bounds[w+1]]) })
	}
	wg.Wait()
	b.pt.end("ops: workers")
	if digest {
		dgs := make([]*workerDigest, workers)
		for w, r := range results {
			dgs[w] = r.dg
		}
		b.dg.takeWorkers(dgs)
	}
	for _, w := range results {
		if w.err != nil {
			return w.err
		}
	}
	for _, w := range results {
		if err := b.s.takeWorkerFeed(w.feed); err != nil {
			return err
		}
	}
	b.pt.end("ops: take worker feeds")
	// The records, in key order: a spilled build's as a sorted run (the
	// workers' ranges follow one another in key order), merged with the
	// other partitions' at the end (finish); one partition's into the
	// bucket now.
	lists := make([][]keyValue, len(results))
	for w, r := range results {
		lists[w], r.records = r.records, nil
	}
	if b.spilled && len(b.parts) > 1 {
		if err := b.records.add(lists...); err != nil {
			return err
		}
	} else {
		bw := newBucketWriter(b.s.bdb, bucketReceiptState, 0.95)
		for _, kvs := range lists {
			for _, kv := range kvs {
				if err := bw.put(kv.k, kv.v); err != nil {
					return err
				}
			}
		}
		if err := bw.flush(); err != nil {
			return err
		}
	}
	b.pt.end("ops: write records")
	// The workers' users and statistics, added to the scratch file's.
	s := b.s
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	err := s.bdb.Update(func(tx *bolt.Tx) error {
		a := applier{tx: tx, c: s.cache, bulk: b.out}
		for _, w := range results {
			for _, u := range w.c.dirtyUsers {
				dst, err := a.userByKey(u.key)
				if err != nil {
					return err
				}
				mergeTotals(&dst.rec.Totals, &u.rec.Totals)
				if r := u.rec.Reported; r != nil && (dst.rec.Reported == nil || r.Newer(*dst.rec.Reported)) {
					dst.rec.Reported = r
				}
				a.c.changedUser(dst)
			}
			for _, e := range w.c.dirtyStats {
				agg, err := a.statsRecord(e.bucket, e.key)
				if err != nil {
					return err
				}
				agg.merge(e.agg)
			}
			b.out.ledger = append(b.out.ledger, w.out.ledger...)
			b.out.index = append(b.out.index, w.out.index...)
			b.out.inProgress = append(b.out.inProgress, w.out.inProgress...)
			b.out.bytes += w.out.bytes
		}
		return s.cache.shrink(tx)
	})
	if err != nil {
		return err
	}
	b.pt.end("ops: merge users+stats")
	err = b.writeOutIfLarge()
	b.pt.end("ops: write out if large")
	return err
}

// mergeTotals adds every count and sum of t to s.
func mergeTotals(s, t *aggregate.Totals) {
	s.Completed += t.Completed
	s.Failed += t.Failed
	s.InProgress += t.InProgress
	s.Points = s.Points.Add(t.Points)
	s.CO2e = s.CO2e.Add(t.CO2e)
	s.GreenProducts += t.GreenProducts
	s.HealthPoints = s.HealthPoints.Add(t.HealthPoints)
	s.AmountAnomalies += t.AmountAnomalies
}

// bulkWorker applies a range of a partition's receipts.
type bulkWorker struct {
	c       *cache
	out     *bulkOut
	records []keyValue
	// feed takes the feed of its receipts (feedrun.go).
	feed *feedOut
	// dg, if not nil, takes the canonical values of its records.
	dg  *workerDigest
	err error
}

func (w *bulkWorker) run(ops []op) {
	a := applier{c: w.c, bulk: w.out, fd: &feedDraft{out: w.feed}}
	var ar arena
	var e eventstore.RecordedEvent
	var d decodedEvent
	var f aggregate.StageRecorded
	for i := 0; i < len(ops); {
		j := i
		for j < len(ops) && ops[j].key == ops[i].key {
			j++
		}
		for k := i; k < j; k++ {
			// e is the op's event: its position (e.Position, in log
			// order within the receipt) and recorded time; no type, id,
			// stream or data.
			if err := decodeOp(&ops[k], &e, &d, &f); err != nil {
				w.err = fmt.Errorf("an op: %w", err)
				return
			}
			a.fd.reset()
			if err := a.stageRecorded(e, &d, f); err != nil {
				// ErrBadEvent: validStage missed a check; the caller
				// replays in log order instead, which skips the event.
				w.err = err
				return
			}
			if err := a.feedEnd(e, &d); err != nil {
				w.err = err
				return
			}
		}
		// The receipt is complete: its record and its index entry.
		re := w.c.receipts[ops[i].key]
		if re == nil {
			w.err = fmt.Errorf("receipt %q: %w", ops[i].key, ErrNotFound)
			return
		}
		delete(w.c.receipts, ops[i].key)
		w.c.dirtyReceipts = w.c.dirtyReceipts[:0]
		w.c.size -= re.size
		v := ar.add(func(b []byte) []byte { return appendReceiptState(b, &re.receiptState) })
		w.records = append(w.records, keyValue{re.key, v})
		if w.dg != nil {
			w.dg.record(re.key, &re.receiptState, &re.view)
		}
		if re.view.UserID != "" {
			w.out.index = append(w.out.index, indexKey(f.Source, re.view.UserID, re.first, f.ReceiptID))
			w.out.bytes += int64(len(f.Source) + len(re.view.UserID) + len(f.ReceiptID) + 48)
		}
		if k := inProgressKey(f.Source, f.ReceiptID, &re.view); k != nil {
			w.out.inProgress = append(w.out.inProgress, k)
			w.out.bytes += int64(len(k) + 24)
		}
		i = j
	}
	// Sorted here, on every core: what writeOutIfLarge and writeRuns sort
	// again is runs of sorted keys (a stable sort merges them in about n
	// comparisons).
	slices.SortFunc(w.out.index, bytes.Compare)
	slices.SortFunc(w.out.inProgress, bytes.Compare)
	slices.SortFunc(w.out.ledger, compareKVs)
}

// writeOutIfLarge writes the collected ledger and index entries to
// sorted runs when they have outgrown a quarter of the budget (the ledger
// with Totals that the end of the build sets: writeRuns).
func (b *bulkBuilder) writeOutIfLarge() error {
	if b.out.bytes <= b.budget/4 {
		return nil
	}
	for _, x := range []struct {
		runs *kvRuns
		keys *[][]byte
	}{{&b.index, &b.out.index}, {&b.inProgress, &b.out.inProgress}} {
		kvs := keysOnly(*x.keys)
		*x.keys = nil
		sortKVs(kvs)
		if err := x.runs.add(kvs); err != nil {
			return err
		}
	}
	sortKVs(b.out.ledger)
	if err := b.ledger.add(b.out.ledger); err != nil {
		return err
	}
	b.out.ledger = nil
	b.out.bytes = 0
	return nil
}

// keysOnly returns key-values of keys with no values.
func keysOnly(keys [][]byte) []keyValue {
	kvs := make([]keyValue, len(keys))
	for i, k := range keys {
		kvs[i] = keyValue{k: k}
	}
	return kvs
}

// removeRuns removes the build's sorted runs.
func (b *bulkBuilder) removeRuns() {
	for _, r := range []*kvRuns{&b.records, &b.index, &b.inProgress, &b.ledger} {
		r.remove()
	}
}

// writeRuns writes the receipts' records, the index, the in-progress
// index and the ledger: each bucket once, in key order, merging its
// sorted runs with what is left in memory; each ledger entry with its
// running Total, the sum of its user's changes up to it.
//
// Each bucket's runs are removed once it is written; on an error,
// bulkBuild removes what is left (removeRuns).
func (b *bulkBuilder) writeRuns() error {
	budget := b.budget / 4
	write := func(runs *kvRuns, mem []keyValue, bucket []byte, fill float64, fix func(k, v []byte) []byte) error {
		sortKVs(mem)
		bw := newBucketWriter(b.s.bdb, bucket, fill)
		err := runs.merge(mem, budget, func(k, v []byte) error {
			if fix != nil {
				v = fix(k, v)
			}
			return bw.put(k, v)
		})
		if err == nil {
			err = bw.flush()
		}
		runs.remove()
		return err
	}
	if err := write(&b.records, nil, bucketReceiptState, 0.95, nil); err != nil {
		return err
	}
	b.pt.end("finish: records")
	index, inProgress := keysOnly(b.out.index), keysOnly(b.out.inProgress)
	b.out.index, b.out.inProgress = nil, nil
	if err := write(&b.index, index, bucketUserReceipts, 0.9, nil); err != nil {
		return err
	}
	if err := write(&b.inProgress, inProgress, bucketInProgress, 0.9, nil); err != nil {
		return err
	}
	b.pt.end("finish: index")
	ledger := b.out.ledger
	b.out.ledger = nil
	var lt ledgerTotals
	if err := write(&b.ledger, ledger, bucketLedger, 0.9, lt.fix); err != nil {
		return err
	}
	b.pt.end("finish: ledger")
	return nil
}

// ledgerTotals sets the running Totals of ledger entries that come in key
// order (user, then log position).
type ledgerTotals struct {
	prefix []byte
	total  decimal.Decimal
	buf    []byte
}

// fix returns the entry v at key k with its Total the sum of its user's
// changes up to it (in a buffer of its own, good until the next fix).
func (t *ledgerTotals) fix(k, v []byte) []byte {
	if len(k) < positionLen {
		return v // cannot be: ledgerKey made it
	}
	if p := k[:len(k)-positionLen]; !bytes.Equal(p, t.prefix) {
		t.prefix, t.total = append(t.prefix[:0], p...), decimal.Zero
	}
	e, err := decodeLedgerEntry(v, 0)
	if err != nil {
		return v // cannot be: appendLedgerEntry wrote it
	}
	t.total = t.total.Add(e.Points)
	if e.Total.Equal(t.total) {
		return v
	}
	e.Total = t.total
	t.buf = appendLedgerEntry(t.buf[:0], &e)
	return t.buf
}

// finish writes the records, the index and the ledger (writeRuns), every
// record of the scratch file's cache, the feed, and the checkpoint last.
func (b *bulkBuilder) finish(last eventstore.Position) error {
	if err := b.writeRuns(); err != nil {
		return err
	}
	// The cache's records are final: written and dropped before the
	// feed, whose merge needs the heap (its users' records, its batches).
	s := b.s
	if err := s.flushAll(); err != nil {
		return err
	}
	s.applyMu.Lock()
	s.cache.reset()
	s.applyMu.Unlock()
	b.pt.end("finish: flush cache")
	var g *digester
	if b.dg != nil {
		g = newDigester()
		g.bucket(bucketFeed)
	}
	if err := s.finishBulkFeed(g); err != nil {
		return err
	}
	if g != nil {
		b.dg.models["feed"] = g.summary("feed")
	}
	b.pt.end("finish: feed")
	if err := s.bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCheckpoint, encodePosition(last))
	}); err != nil {
		return err
	}
	s.advance(eventstore.Start, last, nil)
	b.pt.end("finish: checkpoint")
	return nil
}

// clear empties a scratch file and its cache.
func (s *DB) clear() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.cache.reset()
	return s.bdb.Update(func(tx *bolt.Tx) error {
		if err := dropAll(tx); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(schemaVersion))
	})
}
