//go:build unix

package eventcodec_test

import "syscall"

// cpuTime is the CPU time this process has used, in nanoseconds: on a
// machine shared with other work it tells more than the wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
