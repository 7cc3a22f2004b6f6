package projections

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/receiptd/receiptd/internal/membudget"
)

// The trimmer finds the file's mapping from buckets of the current
// schema: it named the receipts bucket, gone since schema 5, and then
// found the mapping only through the meta bucket's value when bbolt had
// not copied that inline bucket, so it trimmed nothing now and then.
func TestTrimFindsTheMapping(t *testing.T) {
	for _, b := range trimBuckets {
		if !slices.ContainsFunc(allBuckets, func(a []byte) bool { return string(a) == string(b) }) {
			t.Errorf("trimBuckets names %q, not a bucket of schema %s", b, schemaVersion)
		}
	}
	if string(trimBuckets[0]) != string(bucketReceiptState) {
		t.Errorf("trimBuckets starts with %q, want the receipts' records (the largest bucket)", trimBuckets[0])
	}

	events, _ := v1Log(t)
	d, err := Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for len(events) > 0 {
		n := min(len(events), 64)
		if err := d.Apply(events[:n]); err != nil {
			t.Fatal(err)
		}
		events = events[n:]
	}
	if err := d.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketReceiptState).Root() == 0 {
			t.Fatal("the receipts' records are an inline bucket: the log is too small for this test")
		}
		p, n := residentMapping(tx)
		if want := tx.DB().Info().Data; uintptr(p) != want || n < uintptr(tx.Size()) {
			t.Errorf("residentMapping = %p, %d; want the mapping at %#x and at least its %d bytes", p, n, want, tx.Size())
		}
		trimResident(tx) // and reading on works
		if tx.Bucket(bucketReceiptState).Stats().KeyN == 0 {
			t.Error("no receipts")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// While a reader of the whole file runs (summaries: a rebuild's or an
// audit's), the trimmer of a server's read models trims every
// ScratchTrimInterval instead of every TrimInterval, and goes back to
// TrimInterval after it.
func TestTrimKeepsUpWithAWholeFileRead(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	count := func(within time.Duration) int64 {
		from := d.trims.Load()
		time.Sleep(within)
		return d.trims.Load() - from
	}
	d.readingAll.Add(1)
	fast := count(TrimInterval)
	d.readingAll.Add(-1)
	if min := int64(TrimInterval/ScratchTrimInterval) / 2; fast < min {
		t.Errorf("%d trims in %v while the whole file is read, want at least %d", fast, TrimInterval, min)
	}
	if slow := count(TrimInterval + TrimInterval/2); slow > 2 {
		t.Errorf("%d trims in %v after the read, want 1 or 2", slow, TrimInterval+TrimInterval/2)
	}
}

// With a limit on the process's resident file pages (WithMappedLimit),
// the trimmer drops the file's pages as soon as a read has touched more
// than the limit, not at its next regular trim (TrimInterval); without
// one they stay resident until then, which the test checks first so that
// it can fail.
func TestTrimKeepsMappedPagesUnderTheLimit(t *testing.T) {
	if _, ok := membudget.ResidentMapped(); !ok {
		t.Skip("the process's resident file pages cannot be read here (/proc/self/statm)")
	}
	const fill = 48 << 20
	touched := func(limit int64) (over int64) {
		t.Helper()
		base, _ := membudget.ResidentMapped()
		d, err := Open(filepath.Join(t.TempDir(), "views.db"), WithMappedLimit(limit))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		v := make([]byte, 4000)
		if err := d.bdb.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketReceiptState)
			for i := 0; i < fill/len(v); i++ {
				if err := bk.Put(fmt.Appendf(nil, "r%08d", i), v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// Read every value through the mapping, then give a trimmer
		// polling every MappedPollInterval a few polls.
		start := time.Now()
		var sum int
		if err := d.view(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketReceiptState).ForEach(func(_, v []byte) error {
				sum += int(v[0]) + int(v[len(v)-1])
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * membudget.MappedPollInterval)
		n, _ := membudget.ResidentMapped()
		if time.Since(start) > TrimInterval/2 {
			t.Skipf("the read and wait took %v: too slow a machine to tell a regular trim from the limit's", time.Since(start))
		}
		return n - base
	}
	if grew := touched(0); grew < fill/2 {
		t.Fatalf("without a limit, reading %d MiB left only %d MiB more resident: the test cannot tell the limit's trims", fill>>20, grew>>20)
	}
	base, _ := membudget.ResidentMapped()
	limit := base + 8<<20
	if grew := touched(limit); grew > 16<<20 {
		t.Errorf("with a limit 8 MiB above what was resident, reading %d MiB left %d MiB more resident", fill>>20, grew>>20)
	}
}
