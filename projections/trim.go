package projections

import (
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/receiptd/receiptd/internal/membudget"
)

// TrimInterval is how often an open read-model file's pages are dropped
// from the process's resident memory. bbolt reads through a memory map,
// and every page read stays resident: reads and the applier's lookups
// would otherwise keep up to the whole file in RSS. Hot pages fault back
// in from the page cache at their next use.
const TrimInterval = time.Second

// ScratchTrimInterval is TrimInterval for a rebuild's scratch file. A
// bulk build touches pages far faster than a server's reads and applier:
// at 1,000,000 receipts, writing a partition's index and ledger into
// buckets that already hold ~1 GB touched up to 900 MiB of the mapping
// between two trims a second apart.
const ScratchTrimInterval = 100 * time.Millisecond

// runTrimmer drops the file's pages from resident memory every interval
// until stop is closed, every ScratchTrimInterval while a reader of the
// whole file runs (readingAll: the summaries of a rebuild or an audit
// read ~1 GB a second at 1,000,000 receipts), and whenever the process's
// resident file pages pass mappedLimit (WithMappedLimit; polled every
// membudget.MappedPollInterval; 0: no limit).
func (d *DB) runTrimmer(interval time.Duration, mappedLimit int64, stop, done chan struct{}) {
	defer close(done)
	sched := membudget.TrimSchedule{Interval: interval, Fast: ScratchTrimInterval, Limit: mappedLimit,
		Hurry: func() bool { return d.readingAll.Load() > 0 }}
	membudget.RunTrims(stop, sched, func() {
		_ = d.view(func(tx *bolt.Tx) error {
			trimResident(tx)
			return nil
		})
		d.trims.Add(1)
	})
}

// trimResident drops every page of tx's file mapping from the process
// (MADV_DONTNEED on a read-only shared mapping loses nothing). It runs in
// a read transaction, so the mapping cannot move meanwhile.
func trimResident(tx *bolt.Tx) {
	if p, n := residentMapping(tx); n > 0 {
		dontNeed(p, n)
	}
}

// trimBuckets are the buckets whose first value residentMapping reads in
// place, largest first: a bucket of its own pages (not inline in its
// parent's page) holds its values in the mapping, page-aligned.
var trimBuckets = [][]byte{bucketReceiptState, bucketLedger, bucketUsers, bucketEntities, bucketEntityTimeline, bucketStatsDays, bucketMeta}

// residentMapping returns the start and the page-rounded size of tx's
// file mapping, found from a value read in place (the first value of one
// of trimBuckets), checked to lie within it; 0 when no bucket has a value
// in the mapping. (A value of an inline bucket may be a copy: bbolt copies
// an inline bucket that is not aligned.)
func residentMapping(tx *bolt.Tx) (unsafe.Pointer, uintptr) {
	info := tx.DB().Info()
	page := uintptr(osPageSize)
	size := (uintptr(tx.Size()) + page - 1) &^ (page - 1)
	for _, b := range trimBuckets {
		bk := tx.Bucket(b)
		if bk == nil {
			continue
		}
		_, v := bk.Cursor().First()
		if len(v) == 0 {
			continue
		}
		p := unsafe.Pointer(&v[0])
		off := uintptr(p) - info.Data
		if uintptr(p) < info.Data || off >= size {
			continue // a copy, not in the mapping
		}
		return unsafe.Add(p, -int(off)), size
	}
	return nil, 0
}
