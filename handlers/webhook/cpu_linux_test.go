//go:build linux

package webhook_test

import "syscall"

// threadCPU is the CPU time the calling OS thread has used, in
// nanoseconds (RUSAGE_THREAD): with the goroutine locked to its thread,
// what a synchronous call cost, whatever else the machine runs.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
