package projections

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var osPageSize = os.Getpagesize()

// dontNeed drops n bytes of a mapping from addr (page-aligned) from the
// process's resident memory.
func dontNeed(addr unsafe.Pointer, n uintptr) {
	if n == 0 {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(addr), n), unix.MADV_DONTNEED)
}
