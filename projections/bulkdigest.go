package projections

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// A rebuild prints the digests of the read models it built (ModelSummary:
// a SHA-256 of each model's canonical form, canon.go). Read back from the
// file, that is one more pass over every record: decoding each receipt
// record three times (its facts, its view and its statistics are three
// canonical buckets) and encoding them as JSON, and hashing every feed
// event again; it cost a fifth of a rebuild's CPU. A bulk build writes
// those records once, in key order, so it digests them as it writes:
//
//   - the feed (writeFeed writes every feed event, in key order, into an
//     empty bucket): the feed model's summary, whole;
//   - the receipt records, when the ops were in one partition (the
//     workers' ranges of receipts follow one another in key order): each
//     worker encodes the three canonical values of each receipt it
//     completes, from the state it holds, and appends them, framed as the
//     digester hashes them, to a spool file per canonical bucket. A
//     model's digest hashes its buckets one after another (receipt_facts
//     whole, then receipts), so the values wait in the spools; the
//     summaries hash the spools in worker order instead of reading the
//     bucket.
//
// The values are the ones forEachCanonical gives for the same records:
// a worker's receipt state is what decoding its record gives (its facts
// and times came through the same binary encoding, in the op; the
// aggregate does not depend on the order of its facts, and its recorded
// times are the records' received times, both the earliest of the
// stage's deliveries), and its view is the aggregate's. So the digests
// are too (TestBulkDigestsMatchTheFile). The rest (users, ledger, index,
// statistics by day, entities, quarantine) is small and read back from
// the file. The digests hold only at the bulk build's checkpoint: once
// anything else is applied to the file, Rebuild digests the file.

// bulkDigests is what a bulk build digested while it wrote.
type bulkDigests struct {
	// at is the checkpoint the bulk build ended at.
	at eventstore.Position
	// models holds whole models' summaries, by name.
	models map[string]ModelSummary
	// spools holds canonical buckets' keys and values, by bucket name:
	// parts in key order.
	spools map[string][]*canonSpool
	// noReceipts: a receipt record was written by other than the workers
	// (or the ops were in several partitions): no spools.
	noReceipts bool
}

func newBulkDigests() *bulkDigests {
	return &bulkDigests{models: map[string]ModelSummary{}, spools: map[string][]*canonSpool{}}
}

// dropReceipts drops the receipt spools (the file is digested instead).
func (g *bulkDigests) dropReceipts() {
	g.noReceipts = true
	for _, c := range receiptCanon {
		for _, s := range g.spools[string(c.name)] {
			s.remove()
		}
		delete(g.spools, string(c.name))
	}
}

// remove removes g's spool files.
func (g *bulkDigests) remove() {
	if g == nil {
		return
	}
	for name, ss := range g.spools {
		for _, s := range ss {
			s.remove()
		}
		delete(g.spools, name)
	}
}

// receiptCanon lists the canonical buckets of a receipt record
// (bucketReceiptState), in the order receiptCanonValues gives them.
var receiptCanon = []canonBucket{canonical(bucketReceiptFacts), canonical(bucketReceipts), canonical(bucketStatsReceipts)}

// receiptCanonValues sets bufs[i] to the canonical values of the record
// (at key k) of receipt state st, whose aggregate's view is view, one per
// receiptCanon bucket: what canonFacts, canonReceipt and
// canonStatsReceipt give for the stored record.
func receiptCanonValues(bufs *[3][]byte, k []byte, st *receiptState, view *aggregate.ReceiptView) error {
	var err error
	e := enc{b: bufs[0][:0]}
	e.facts(st.agg.Facts())
	if bufs[0], err = e.finish("facts of receipt", k); err != nil {
		return err
	}
	rec := receiptRecord{View: *view, FirstPosition: st.first, LastPosition: st.last}
	e = enc{b: bufs[1][:0]}
	e.receiptRecord(&rec)
	if bufs[1], err = e.finish("receipt", k); err != nil {
		return err
	}
	e = enc{b: bufs[2][:0]}
	statsReceiptOf(&e, st, view)
	bufs[2], err = e.finish("statistics of receipt", k)
	return err
}

// canonSpool holds a canonical bucket's keys and values in a file,
// framed as digester.kv hashes them.
type canonSpool struct {
	f    *os.File
	w    *bufio.Writer
	keys int64
	buf  []byte
}

func newCanonSpool(path string) (*canonSpool, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+scratchSuffix+"digest-*")
	if err != nil {
		return nil, fmt.Errorf("create a digest spool: %w", err)
	}
	return &canonSpool{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// kv adds a key and its canonical value (as digester.kv hashes them:
// each a field, its length as a uvarint then its bytes).
func (s *canonSpool) kv(k, v []byte) {
	s.keys++
	b := binary.AppendUvarint(s.buf[:0], uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	s.buf = append(b, v...)
	s.w.Write(s.buf)
}

// finish flushes s: its file is complete.
func (s *canonSpool) finish() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write a digest spool: %w", err)
	}
	return nil
}

// hashInto hashes s's keys and values into g, as g.kv would have.
func (s *canonSpool) hashInto(g *digester) error {
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	if _, err := io.Copy(g.h, io.NewSectionReader(s.f, 0, st.Size())); err != nil {
		return fmt.Errorf("read a digest spool: %w", err)
	}
	g.keys += s.keys
	return nil
}

func (s *canonSpool) remove() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

// workerDigest is a bulk worker's part of the receipt spools.
type workerDigest struct {
	spools [3]*canonSpool // receiptCanon's
	bufs   [3][]byte
	// err: a record had no canonical form (the file's digest gives the
	// error); the spools are dropped.
	err error
}

func newWorkerDigest(path string) (*workerDigest, error) {
	w := &workerDigest{}
	for i := range w.spools {
		s, err := newCanonSpool(path)
		if err != nil {
			w.remove()
			return nil, err
		}
		w.spools[i] = s
	}
	return w, nil
}

// record adds the canonical values of the record of a receipt the worker
// completed (see receiptCanonValues).
func (w *workerDigest) record(k []byte, st *receiptState, view *aggregate.ReceiptView) {
	if w.err != nil {
		return
	}
	if err := receiptCanonValues(&w.bufs, k, st, view); err != nil {
		w.err = err
		return
	}
	for i, s := range w.spools {
		s.kv(k, w.bufs[i])
	}
}

func (w *workerDigest) finish() error {
	if w.err != nil {
		return w.err
	}
	for _, s := range w.spools {
		if err := s.finish(); err != nil {
			return err
		}
	}
	return nil
}

func (w *workerDigest) remove() {
	for _, s := range w.spools {
		if s != nil {
			s.remove()
		}
	}
}

// takeWorkers adds the workers' spools, in worker order (key order), or
// drops the receipt spools if one of them failed.
func (g *bulkDigests) takeWorkers(ws []*workerDigest) {
	ok := !g.noReceipts
	for _, w := range ws {
		if w == nil || w.finish() != nil {
			ok = false
		}
	}
	if !ok {
		for _, w := range ws {
			if w != nil {
				w.remove()
			}
		}
		g.dropReceipts()
		return
	}
	for _, w := range ws {
		for i, c := range receiptCanon {
			g.spools[string(c.name)] = append(g.spools[string(c.name)], w.spools[i])
		}
	}
}

// errStaleDigests: the file moved past a bulk build's digests.
var errStaleDigests = errors.New("projections: the read models moved past the bulk build's digests")
