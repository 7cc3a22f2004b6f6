//go:build !linux

package bolt

import (
	"os"
	"unsafe"
)

const (
	adviseWillNeed = 0
	adviseDontNeed = 0
)

var osPageSize = os.Getpagesize()

// madvise is a no-op where scans are not advised (see scanRange).
func madvise(addr unsafe.Pointer, n uintptr, advice int) {}
