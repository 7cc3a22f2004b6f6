//go:build !linux

package projections

import (
	"os"
	"unsafe"
)

var osPageSize = os.Getpagesize()

// dontNeed is a no-op where the mapping is not trimmed.
func dontNeed(addr unsafe.Pointer, n uintptr) {}
