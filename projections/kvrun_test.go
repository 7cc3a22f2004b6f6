package projections

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// Sorted runs merge into one sequence in key order, of equal keys in run
// order (the in-memory run last), whether a merge reads every run at once
// or first merges groups of them (a budget of a few buffers); and their
// files are gone after remove.
func TestKVRunsMergeInKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, budget := range []int64{64 << 20, 2 * minRunBuffer, 3 * minRunBuffer} {
		dir := t.TempDir()
		runs := kvRuns{path: filepath.Join(dir, "views.db.scratch-test")}
		var all []keyValue // every run's key-values, in run order
		var tags []string
		sorted := func(n, run int) []keyValue {
			kvs := make([]keyValue, n)
			for i := range kvs {
				// Few distinct keys: runs share some.
				k := []byte(fmt.Sprintf("k%05d", rng.IntN(3000)))
				kvs[i] = keyValue{k: k, v: []byte(fmt.Sprintf("run %d #%d %s", run, i, bytes.Repeat([]byte("v"), rng.IntN(40))))}
			}
			sortKVs(kvs)
			return kvs
		}
		for run := range 9 {
			kvs := sorted(200+rng.IntN(300), run)
			// A run given as two lists that follow one another.
			cut := len(kvs) / 2
			for cut > 0 && cut < len(kvs) && bytes.Equal(kvs[cut-1].k, kvs[cut].k) {
				cut++
			}
			if err := runs.add(kvs[:cut], kvs[cut:]); err != nil {
				t.Fatal(err)
			}
			all = append(all, kvs...)
		}
		if err := runs.add(); err != nil { // nothing: no run
			t.Fatal(err)
		}
		if len(runs.names) != 9 {
			t.Fatalf("%d runs, want 9", len(runs.names))
		}
		mem := sorted(500, 9)
		all = append(all, mem...)
		want := slices.Clone(all)
		sortKVs(want)
		for _, kv := range want {
			tags = append(tags, string(kv.k)+"="+string(kv.v))
		}
		var got []string
		err := runs.merge(mem, budget, func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tags) {
			t.Errorf("budget %d: merged %d key-values, want %d in key order then run order", budget, len(got), len(tags))
			for i := range min(len(got), len(tags)) {
				if got[i] != tags[i] {
					t.Errorf("first difference at %d: %q, want %q", i, got[i], tags[i])
					break
				}
			}
		}
		if budget < 8*minRunBuffer && len(runs.names) >= 9 {
			t.Errorf("budget %d: %d runs merged at once, want groups merged first", budget, len(runs.names))
		}
		runs.remove()
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
			t.Errorf("budget %d: files left: %v", budget, left)
		}
	}
}

// A run file cut short is an error of the merge, not a shorter sequence.
func TestKVRunTruncated(t *testing.T) {
	dir := t.TempDir()
	runs := kvRuns{path: filepath.Join(dir, "views.db.scratch-test")}
	defer runs.remove()
	kvs := []keyValue{{k: []byte("a"), v: []byte("one")}, {k: []byte("b"), v: []byte("two")}}
	if err := runs.add(kvs); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(runs.names[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(runs.names[0], fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = runs.merge(nil, 1<<20, func(k, v []byte) error { n++; return nil })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("merge of a truncated run: %v after %d key-values, want io.ErrUnexpectedEOF", err, n)
	}
}

// A bucketWriter's transactions hold what it was given, whatever the
// buffers its key-values came in are used for after put returns.
func TestBucketWriterCopies(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := []byte("b")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		t.Fatal(err)
	}
	w := newBucketWriter(db, name, 0.9)
	w.maxTx = 7 // several transactions
	buf := make([]byte, 0, 64)
	for i := range 100 {
		buf = fmt.Appendf(buf[:0], "%03d", i)
		k := buf[:3]
		v := fmt.Appendf(buf[3:3], "value %d", i)
		if err := w.put(k, v); err != nil {
			t.Fatal(err)
		}
		clear(buf[:cap(buf)])
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		i := 0
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			if wk, wv := fmt.Sprintf("%03d", i), fmt.Sprintf("value %d", i); string(k) != wk || string(v) != wv {
				t.Errorf("key-value %d: %q=%q, want %q=%q", i, k, v, wk, wv)
			}
			i++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Ledger entries in key order get running Totals per user, whatever
// Totals they came with.
func TestLedgerTotals(t *testing.T) {
	var lt ledgerTotals
	type entry struct {
		user   string
		points string
		total  string
	}
	for i, e := range []entry{{"u1", "10", "10"}, {"u1", "2.5", "12.5"}, {"u1", "-3", "9.5"}, {"u2", "1", "1"}, {"u2", "0.25", "1.25"}, {"u3", "7", "7"}} {
		k := ledgerKey("src", e.user, eventstore.Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)})
		v := appendLedgerEntry(nil, &LedgerEntry{Kind: LedgerCredit, Points: decimal.RequireFromString(e.points), Total: decimal.RequireFromString("99")})
		got, err := decodeLedgerEntry(lt.fix(k, v), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Total.Equal(decimal.RequireFromString(e.total)) || !got.Points.Equal(decimal.RequireFromString(e.points)) {
			t.Errorf("entry %d of %s: points %s total %s, want %s and %s", i, e.user, got.Points, got.Total, e.points, e.total)
		}
	}
}

// BenchmarkKVRunsMerge merges 64 sorted runs of 2,000 key-values of ~1
// KB (a spilled bulk build's records, one run a partition) into an empty
// bucket, and reports key-values/s.
//
//	go test -run '^$' -bench KVRunsMerge -benchmem ./projections/
func BenchmarkKVRunsMerge(b *testing.B) {
	const parts, per = 64, 2000
	dir := b.TempDir()
	runs := kvRuns{path: filepath.Join(dir, "views.db.scratch-bench")}
	defer runs.remove()
	v := bytes.Repeat([]byte("v"), 1000)
	for p := range parts {
		kvs := make([]keyValue, per)
		for i := range kvs {
			kvs[i] = keyValue{k: fmt.Appendf(nil, "src\x00%08d", i*parts+p), v: v}
		}
		if err := runs.add(kvs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		db, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("b%d.db", i)), 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketReceiptState); return err }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w := newBucketWriter(db, bucketReceiptState, 0.95)
		if err := mergeKVRuns(runs.names, nil, runBuffer(64<<20, parts), w.put); err != nil {
			b.Fatal(err)
		}
		if err := w.flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		os.Remove(db.Path())
		b.StartTimer()
	}
	b.ReportMetric(float64(parts*per)*float64(b.N)/b.Elapsed().Seconds(), "kv/s")
}
