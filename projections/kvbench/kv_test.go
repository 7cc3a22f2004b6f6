// Package kvbench measures the two candidate stores for receiptd's read
// models on their workload — bbolt (what the read models use) and
// github.com/cockroachdb/pebble/v2 (an LSM) — so that the choice is made
// by numbers. It is a module of its own so that pebble is no dependency
// of receiptd unless the numbers choose it.
//
//	cd projections/kvbench && go test -run '^$' -bench . -benchmem
//
// The workload is the read models' (see projections/cache.go): a receipt
// is three records under one key — facts (~1.2 KB), view (~1 KB),
// statistics (~300 B) — in three buckets, and a live batch rewrites the
// records of the receipts its events touched, plus the checkpoint, in one
// commit that is not fsynced. A rebuild writes every receipt's records
// once, in key order, into an empty store.
package kvbench

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
)

const (
	receipts  = 100_000 // in the store before the timed updates
	batchSize = 64      // receipts per live commit
	cacheSize = 64 << 20
)

var (
	buckets    = []string{"receipt_facts", "receipts", "stats_receipts"}
	valueSizes = []int{1200, 1000, 300}
)

func receiptKey(i int) []byte {
	return fmt.Appendf(nil, "reewild\x00rcpt-%08d-%04x", i, uint16(i*2654435761>>16))
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789{}:,\""

func value(rng *rand.Rand, n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return v
}

// kv is what the read models need of a store.
type kv interface {
	// commit writes the records of the receipts and the checkpoint.
	commit(keys [][]byte, vals [][][]byte, checkpoint uint64) error
	get(bucket int, k []byte) ([]byte, error)
	close() error
}

type boltKV struct{ db *bolt.DB }

func openBolt(tb testing.TB, dir string) kv {
	db, err := bolt.Open(filepath.Join(dir, "views.db"), 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		tb.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range append(buckets, "meta") {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &boltKV{db}
}

func (b *boltKV) commit(keys [][]byte, vals [][][]byte, cp uint64) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		for bi, name := range buckets {
			bk := tx.Bucket([]byte(name))
			bk.FillPercent = 0.9
			for i, k := range keys {
				if err := bk.Put(k, vals[i][bi]); err != nil {
					return err
				}
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("checkpoint"), binary.BigEndian.AppendUint64(nil, cp))
	})
}

func (b *boltKV) get(bi int, k []byte) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		out = append(out, tx.Bucket([]byte(buckets[bi])).Get(k)...)
		return nil
	})
	return out, err
}

func (b *boltKV) close() error { return b.db.Close() }

type pebbleKV struct {
	db    *pebble.DB
	cache *pebble.Cache
}

func openPebble(tb testing.TB, dir string) kv {
	c := pebble.NewCache(cacheSize)
	db, err := pebble.Open(filepath.Join(dir, "views"), &pebble.Options{Cache: c, MemTableSize: 32 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return &pebbleKV{db: db, cache: c}
}

// A bucket is a one-byte key prefix.
func prefixed(bi int, k []byte) []byte { return append([]byte{byte(bi + 1)}, k...) }

func (p *pebbleKV) commit(keys [][]byte, vals [][][]byte, cp uint64) error {
	b := p.db.NewBatch()
	defer b.Close()
	for bi := range buckets {
		for i, k := range keys {
			if err := b.Set(prefixed(bi, k), vals[i][bi], nil); err != nil {
				return err
			}
		}
	}
	if err := b.Set([]byte{0, 'c'}, binary.BigEndian.AppendUint64(nil, cp), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

func (p *pebbleKV) get(bi int, k []byte) ([]byte, error) {
	v, closer, err := p.db.Get(prefixed(bi, k))
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

func (p *pebbleKV) close() error {
	err := p.db.Close()
	p.cache.Unref()
	return err
}

var stores = []struct {
	name string
	open func(testing.TB, string) kv
}{{"bbolt", openBolt}, {"pebble", openPebble}}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writtenBytes is what the process has written to storage (or the page
// cache) so far: /proc/self/io's wchar.
func writtenBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "wchar: %d", &n); err == nil {
			return n
		}
	}
	return 0
}

// load writes n receipts in key order, in commits of 4,096 receipts: what
// a rebuild writes.
func load(tb testing.TB, s kv, n int, rng *rand.Rand) {
	keys, vals := make([][]byte, 0, 4096), make([][][]byte, 0, 4096)
	for i := range n {
		keys = append(keys, receiptKey(i))
		vals = append(vals, [][]byte{value(rng, valueSizes[0]), value(rng, valueSizes[1]), value(rng, valueSizes[2])})
		if len(keys) == cap(keys) || i == n-1 {
			if err := s.commit(keys, vals, uint64(i)); err != nil {
				tb.Fatal(err)
			}
			keys, vals = keys[:0], vals[:0]
		}
	}
}

// BenchmarkLiveUpdate: commits of 64 random receipts' three records
// (rewritten) and the checkpoint, not fsynced, into a store of 100,000
// receipts. ns/op, cpu-ns/op and written-B/op are per receipt.
func BenchmarkLiveUpdate(b *testing.B) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			s := st.open(b, b.TempDir())
			defer s.close()
			load(b, s, receipts, rng)
			vals := make([][][]byte, batchSize)
			for i := range vals {
				vals[i] = [][]byte{value(rng, valueSizes[0]), value(rng, valueSizes[1]), value(rng, valueSizes[2])}
			}
			keys := make([][]byte, batchSize)
			b.ResetTimer()
			cpu0, w0 := cpuTime(), writtenBytes()
			for done := 0; done < b.N; done += batchSize {
				for i := range keys {
					keys[i] = receiptKey(rng.IntN(receipts))
				}
				if err := s.commit(keys, vals, uint64(done)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(writtenBytes()-w0)/float64(b.N), "written-B/op")
		})
	}
}

// BenchmarkBulkLoad: a rebuild's writes, every receipt once in key order
// into an empty store. ns/op is per receipt.
func BenchmarkBulkLoad(b *testing.B) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			s := st.open(b, b.TempDir())
			defer s.close()
			b.ResetTimer()
			cpu0, w0 := cpuTime(), writtenBytes()
			load(b, s, b.N, rng)
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(writtenBytes()-w0)/float64(b.N), "written-B/op")
		})
	}
}

// BenchmarkGet: point reads of random receipts' views (what the API
// serves), from a store of 100,000 receipts.
func BenchmarkGet(b *testing.B) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			s := st.open(b, b.TempDir())
			defer s.close()
			load(b, s, receipts, rng)
			b.ResetTimer()
			for range b.N {
				if _, err := s.get(1, receiptKey(rng.IntN(receipts))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
