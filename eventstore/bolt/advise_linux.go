package bolt

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	adviseWillNeed = unix.MADV_WILLNEED
	adviseDontNeed = unix.MADV_DONTNEED
)

var osPageSize = os.Getpagesize()

// madvise gives advice on n bytes of a mapping from addr (page-aligned).
// See scanRange for why the addresses are valid when it is called.
func madvise(addr unsafe.Pointer, n uintptr, advice int) {
	if n == 0 {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(addr), n), advice)
}
