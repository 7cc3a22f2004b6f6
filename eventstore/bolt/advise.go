package bolt

import (
	"unsafe"

	bbolt "go.etcd.io/bbolt"
)

// A scan reads the events bucket in key order: ReadAll, and Subscribe when
// it reads from the file. bbolt maps the file with MADV_RANDOM (no
// readahead), and every page a process has read through the mapping stays
// mapped, counted in its resident memory, until the kernel needs it: a
// rebuild of a large log, read through the mapping, would leave the whole
// file resident (the 1M-receipt bench saw 21 GB). So a scan
//
//   - asks the kernel to read ahead (MADV_WILLNEED) the part of the mapping
//     after the values it reaches, in windows of scanAhead bytes: events are
//     appended in key order, so their pages mostly follow one another in the
//     file; and
//   - when its batch is decoded (the events copied out), tells the kernel it
//     no longer needs the pages it went through (MADV_DONTNEED).
//
// Why this is safe: bbolt maps the file read-only and shared (PROT_READ,
// MAP_SHARED) and writes with pwrite, so the mapping never holds a page that
// differs from the file: dropping one loses nothing, and the next access
// faults it in again from the page cache or the file. The addresses are
// those of values bbolt returned in a read transaction, and a read
// transaction holds bbolt's mmap lock, under which the mapping can neither
// move nor shrink: they stay inside the mapping until the transaction ends,
// and the advice is given before it does. Both calls are advice: an error
// is ignored and the scan's result does not depend on them.
const scanAhead = 4 << 20

// scanRange tracks the part of the mapping a scan went through.
type scanRange struct {
	base, end uintptr // the mapping's data, and the end of the file's pages
	page      uintptr // the OS page size
	lo, hi    uintptr // the values seen: [lo, hi)
	loPtr     unsafe.Pointer
	ahead     uintptr // read ahead up to here
	off       bool    // Options.noScanAdvice
}

func newScanRange(tx *bbolt.Tx, off bool) scanRange {
	info := tx.DB().Info()
	return scanRange{
		base: info.Data, end: info.Data + uintptr(tx.Size()),
		page: uintptr(osPageSize), lo: ^uintptr(0), off: off,
	}
}

// saw records a value the scan read (a slice into the mapping), and reads
// ahead of it when it comes near the end of the window read ahead so far.
func (r *scanRange) saw(v []byte) {
	if r.off || len(v) == 0 {
		return
	}
	p := unsafe.Pointer(&v[0])
	a := uintptr(p)
	if a < r.base || a >= r.end {
		return // not in the mapping (never, in a read transaction)
	}
	if a < r.lo {
		r.lo, r.loPtr = a, p
	}
	r.hi = max(r.hi, a+uintptr(len(v)))
	if a+scanAhead/2 > r.ahead {
		from := max(a, r.ahead) &^ (r.page - 1)
		to := min(a+scanAhead, r.end)
		if to > from {
			// from is within a page of a, inside the mapping.
			madvise(unsafe.Add(p, int(from)-int(a)), to-from, adviseWillNeed)
			r.ahead = to
		}
	}
}

// done drops the pages the scan went through from the process.
func (r *scanRange) done() {
	if r.off || r.hi <= r.lo {
		return
	}
	lo := r.lo &^ (r.page - 1)
	hi := min((r.hi+r.page-1)&^(r.page-1), (r.end+r.page-1)&^(r.page-1))
	madvise(unsafe.Add(r.loPtr, -int(r.lo-lo)), hi-lo, adviseDontNeed)
}

// trimResident drops every page of the mapping from the process (see
// Options.TrimInterval): the pages the committer and the readers touched
// since the last trim (index leaves, branch pages, events read by
// ReadStream) would otherwise stay resident, up to the whole file. Hot
// pages fault back in from the page cache at their next use. It runs in a
// read transaction, so the mapping cannot move meanwhile (as for a scan).
func trimResident(tx *bbolt.Tx) {
	// A pointer into the mapping, and its offset from the mapping's start:
	// the first event's record is a slice of a page of the file (in a read
	// transaction; a small bucket's values may be copies, which the range
	// check below leaves alone).
	_, v := tx.Bucket(bucketEvents).Cursor().First()
	if len(v) == 0 {
		return
	}
	info := tx.DB().Info()
	p := unsafe.Pointer(&v[0])
	off := uintptr(p) - info.Data
	page := uintptr(osPageSize)
	size := (uintptr(tx.Size()) + page - 1) &^ (page - 1)
	if off >= size {
		return // not in the mapping (never, in a read transaction)
	}
	madvise(unsafe.Add(p, -int(off)), size, adviseDontNeed)
}
