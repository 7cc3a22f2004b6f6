package projections

import (
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// TrimInterval is how often an open read-model file's pages are dropped
// from the process's resident memory. bbolt reads through a memory map,
// and every page read stays resident: reads and the applier's lookups
// would otherwise keep up to the whole file in RSS. Hot pages fault back
// in from the page cache at their next use.
const TrimInterval = time.Second

// runTrimmer drops the file's pages from resident memory every interval
// until stop is closed.
func (d *DB) runTrimmer(interval time.Duration, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = d.view(func(tx *bolt.Tx) error {
				trimResident(tx)
				return nil
			})
		}
	}
}

// trimResident drops every page of tx's file mapping from the process
// (MADV_DONTNEED on a read-only shared mapping loses nothing). It runs in
// a read transaction, so the mapping cannot move meanwhile. The mapping's
// start is found from a value read in place (the receipt records', or
// the meta bucket's), checked to lie within it.
func trimResident(tx *bolt.Tx) {
	var v []byte
	for _, b := range [][]byte{bucketReceiptState, bucketMeta} {
		if bk := tx.Bucket(b); bk != nil {
			if _, v = bk.Cursor().First(); len(v) > 0 {
				break
			}
		}
	}
	if len(v) == 0 {
		return
	}
	info := tx.DB().Info()
	p := unsafe.Pointer(&v[0])
	off := uintptr(p) - info.Data
	page := uintptr(osPageSize)
	size := (uintptr(tx.Size()) + page - 1) &^ (page - 1)
	if uintptr(p) < info.Data || off >= size {
		return // a copy, not in the mapping
	}
	dontNeed(unsafe.Add(p, -int(off)), size)
}
