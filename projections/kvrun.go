package projections

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Sorted runs of a bucket's key-values (a bulk build's receipt records,
// index and ledger: bulk.go). A spilled bulk build applies its receipts
// partition by partition, and a partition's receipts are a hash's, spread
// over the whole key space. Written into the bucket as each partition
// ends, every key of the later partitions lands between keys already
// written, on a leaf of its own: a transaction dirties (and bbolt copies
// into the heap) a page a key, and the kernel maps the pages around each
// one it faults in. Instead, each partition writes its key-values, sorted,
// to a run file beside the scratch file, and the end of the build merges
// the runs and writes each bucket once, in key order, every leaf filled
// once and never read again.

// kvRuns is one bucket's runs: files of key-values, each sorted by key.
type kvRuns struct {
	// path is the scratch file's: the runs are created beside it.
	path  string
	names []string
}

// add writes lists, one after another, as a new run: sorted by key, each
// list and the lists one after another.
func (r *kvRuns) add(lists ...[]keyValue) error {
	n := 0
	for _, kvs := range lists {
		n += len(kvs)
	}
	if n == 0 {
		return nil
	}
	name, err := writeKVRun(r.path, func(w *bufio.Writer) error {
		for _, kvs := range lists {
			for _, kv := range kvs {
				writeKV(w, kv.k, kv.v)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.names = append(r.names, name)
	return nil
}

// remove removes r's run files.
func (r *kvRuns) remove() {
	for _, name := range r.names {
		os.Remove(name)
	}
	r.names = nil
}

// writeKVRun creates a run file beside path and fills it with fill.
func writeKVRun(path string, fill func(w *bufio.Writer) error) (name string, err error) {
	return writeRunFile(filepath.Dir(path), filepath.Base(path)+scratchSuffix+"run-*", "a sorted run", fill)
}

// writeRunFile creates a file in dir (os.CreateTemp's pattern), fills it
// through a buffered writer with fill and returns its name; the file is
// removed if anything fails. what names the file in errors.
func writeRunFile(dir, pattern, what string, fill func(w *bufio.Writer) error) (name string, err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", what, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", what, cerr)
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 256<<10)
	if err := fill(w); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	return f.Name(), nil
}

// writeKV writes a key-value of a run (its errors are w's).
func writeKV(w *bufio.Writer, k, v []byte) {
	var head [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(head[:], uint64(len(k)))
	n += binary.PutUvarint(head[n:], uint64(len(v)))
	w.Write(head[:n])
	w.Write(k)
	w.Write(v)
}

// kvReader reads one run: a file's key-values, or a sorted slice's.
type kvReader struct {
	f   *os.File
	r   *bufio.Reader
	mem []keyValue
	// k and v are the current key-value; read from a file, they are in
	// buf, good until the next read.
	k, v []byte
	buf  []byte
	// order is the run's place among the merged runs: of equal keys, the
	// later run's is the one kept (as a stable sort and puts in run
	// order would keep it).
	order int
}

func openKVRun(name string, size, order int) (*kvReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open a sorted run: %w", err)
	}
	return &kvReader{f: f, r: bufio.NewReaderSize(f, size), order: order}, nil
}

// next reads the next key-value into k and v; false at the end.
func (r *kvReader) next() (bool, error) {
	if r.f == nil {
		if len(r.mem) == 0 {
			return false, nil
		}
		r.k, r.v, r.mem = r.mem[0].k, r.mem[0].v, r.mem[1:]
		return true, nil
	}
	kn, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read a sorted run: %w", err)
	}
	vn, err := binary.ReadUvarint(r.r)
	if err != nil {
		return false, fmt.Errorf("read a sorted run: %w", noEOF(err))
	}
	if kn > maxFeedRecord || vn > maxFeedRecord {
		return false, fmt.Errorf("read a sorted run: a key-value of %d+%d bytes: %w", kn, vn, errCorrupt)
	}
	n := int(kn + vn)
	if n > cap(r.buf) {
		r.buf = make([]byte, n, max(n, 2<<10))
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return false, fmt.Errorf("read a sorted run: %w", noEOF(err))
	}
	r.k, r.v = b[:kn:kn], b[kn:]
	return true, nil
}

// noEOF turns an end of file inside a key-value into the truncation it is.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *kvReader) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// kvHeap orders runs by their current key, then by their order.
type kvHeap []*kvReader

func (h kvHeap) Len() int { return len(h) }
func (h kvHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].k, h[j].k); c != 0 {
		return c < 0
	}
	return h[i].order < h[j].order
}
func (h kvHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *kvHeap) Push(x any)   { *h = append(*h, x.(*kvReader)) }
func (h *kvHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge calls fn with the key-values of every run and of mem (sorted by
// key, the last run), in key order; of equal keys, in run order. It
// reads the files with buffers of budget bytes in all (within
// minRunBuffer and maxRunBuffer each), first merging groups of files
// into larger runs while there are more than a merge may read at once
// within budget (feedFanIn). The key and value fn gets are good until it
// returns.
func (r *kvRuns) merge(mem []keyValue, budget int64, fn func(k, v []byte) error) error {
	for fan := feedFanIn(budget); len(r.names) > fan; {
		g := min(fan, len(r.names)-fan+1)
		name, err := writeKVRun(r.path, func(w *bufio.Writer) error {
			return mergeKVRuns(r.names[:g], nil, runBuffer(budget, g), func(k, v []byte) error {
				writeKV(w, k, v)
				return nil
			})
		})
		if err != nil {
			return err
		}
		for _, n := range r.names[:g] {
			os.Remove(n) // merged: the disk holds each key-value once
		}
		// The merged run takes the place of its first: runs after the
		// group keep their order after it.
		r.names = append([]string{name}, r.names[g:]...)
	}
	return mergeKVRuns(r.names, mem, runBuffer(budget, len(r.names)), fn)
}

// mergeKVRuns merges run files (in run order) and then mem; see merge.
func mergeKVRuns(names []string, mem []keyValue, size int, fn func(k, v []byte) error) error {
	h := make(kvHeap, 0, len(names)+1)
	defer func() {
		for _, r := range h {
			r.close()
		}
	}()
	add := func(r *kvReader) error {
		ok, err := r.next()
		if err != nil {
			r.close()
			return err
		}
		if !ok {
			r.close()
			return nil
		}
		h = append(h, r)
		return nil
	}
	for i, name := range names {
		r, err := openKVRun(name, size, i)
		if err != nil {
			return err
		}
		if err := add(r); err != nil {
			return err
		}
	}
	if err := add(&kvReader{mem: mem, order: len(names)}); err != nil {
		return err
	}
	heap.Init(&h)
	for h.Len() > 0 {
		r := h[0]
		if err := fn(r.k, r.v); err != nil {
			return err
		}
		ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			r.close()
			heap.Pop(&h)
		}
	}
	return nil
}

// bucketWriter writes key-values that come in key order into a bucket,
// a transaction per kvTxBytes of them (or kvTxKeys keys), its leaves
// filled to fill.
type bucketWriter struct {
	db     *bolt.DB
	bucket []byte
	fill   float64
	maxTx  int
	// pending holds the current transaction's key-values, their bytes in
	// arena (bbolt keeps a put value until the commit).
	pending []keyValue
	arena   []byte
}

// kvTxKeys bounds a bucketWriter's transaction: keys that come in order
// dirty the last leaf and the pages above it, a page for ~40 records;
// the values' copies are what the transaction holds (kvTxBytes).
const (
	kvTxKeys  = 4 * flushChunk
	kvTxBytes = 8 << 20
)

func newBucketWriter(db *bolt.DB, bucket []byte, fill float64) *bucketWriter {
	return &bucketWriter{db: db, bucket: bucket, fill: fill, maxTx: kvTxKeys}
}

// put queues a key-value (copied), writing the queue when it is full.
func (w *bucketWriter) put(k, v []byte) error {
	if len(w.pending) >= w.maxTx || len(w.arena)+len(k)+len(v) > kvTxBytes && len(w.pending) > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.arena == nil {
		w.arena = make([]byte, 0, kvTxBytes+4<<10)
		w.pending = make([]keyValue, 0, 1024)
	}
	start := len(w.arena)
	w.arena = append(w.arena, k...)
	w.arena = append(w.arena, v...)
	kv := w.arena[start:]
	w.pending = append(w.pending, keyValue{k: kv[:len(k):len(k)], v: kv[len(k):]})
	return nil
}

// flush writes the queued key-values in one transaction.
func (w *bucketWriter) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(w.bucket)
		bk.FillPercent = w.fill
		for _, kv := range w.pending {
			if err := bk.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	clear(w.pending)
	w.pending, w.arena = w.pending[:0], w.arena[:0]
	return err
}

// sortKVs sorts key-values by key, stably (of equal keys, the later is
// put last and kept).
func sortKVs(kvs []keyValue) { slices.SortStableFunc(kvs, compareKVs) }
