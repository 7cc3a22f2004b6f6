package membudget

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// MappedPollInterval is how often a trimmer with a limit (Plan.Mapped)
// reads ResidentMapped; a read costs a few microseconds. Polls alone
// cannot catch a burst faster than them: a bulk build's commits into
// buckets full of other partitions' keys once mapped ~210 MiB of file
// pages within 90 ms (5 ms samples, 1,000,000 receipts); since it writes
// each bucket once, in key order, from sorted runs (projections/kvrun.go),
// it has no such commits. With trims at most every 100 ms instead of at
// every poll over the limit, that older build peaked at a VmHWM of 568 MiB
// against 401-409.
const MappedPollInterval = 10 * time.Millisecond

// TrimSchedule says when a mapped file's trimmer drops the file's pages
// from the process's resident memory: every Interval; every Fast while
// Hurry reports true (nil: never); and, with a Limit (Plan.Mapped),
// whenever the process's resident file pages pass it, polled every
// MappedPollInterval.
type TrimSchedule struct {
	Interval time.Duration
	Fast     time.Duration
	Hurry    func() bool
	Limit    int64
}

// RunTrims calls trim on s's schedule until stop is closed.
func RunTrims(stop <-chan struct{}, s TrimSchedule, trim func()) {
	tick := s.Interval
	if s.Hurry != nil {
		tick = min(tick, s.Fast)
	}
	if s.Limit > 0 {
		tick = min(tick, MappedPollInterval)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			// (Half a tick early counts as on time: ticks jitter.)
			since := now.Sub(last) + tick/2
			due := since >= s.Interval || s.Hurry != nil && s.Hurry() && since >= s.Fast
			if !due && !OverMapped(s.Limit) {
				continue
			}
			last = now
			trim()
		}
	}
}

// ResidentMapped returns how much of the files the process maps is
// resident in its memory, in bytes (RssFile and RssShmem: the third field
// of /proc/self/statm, in pages), and false where it cannot be read (not
// Linux).
func ResidentMapped() (int64, bool) {
	var buf [128]byte
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	n, err := f.Read(buf[:])
	f.Close()
	if err != nil {
		return 0, false
	}
	return parseStatmShared(buf[:n], int64(os.Getpagesize()))
}

// parseStatmShared returns the third field of a statm line ("size
// resident shared text lib data dt", in pages) times page.
func parseStatmShared(line []byte, page int64) (int64, bool) {
	fields := bytes.Fields(line)
	if len(fields) < 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n * page, true
}

// OverMapped reports whether the process's resident file pages are above
// limit (false with no limit, or where they cannot be read).
func OverMapped(limit int64) bool {
	if limit <= 0 {
		return false
	}
	n, ok := ResidentMapped()
	return ok && n > limit
}
