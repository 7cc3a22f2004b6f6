package projections_test

import (
	"fmt"
	"testing"
)

// BenchmarkApplyGroups is BenchmarkApplyLarge's load (v2 events of 40,000
// whole receipts shuffled together, on read models that already hold the
// first 120,000 events of the log, the record cache at what a 256 MiB
// memory_budget gives it) applied in groups of each size: 27 events is
// what a live Runner's transactions held under the bench's ingest with no
// Runner.MinGroupInterval, 400 what they held with 200 ms of it. ns/op,
// B/op and allocs/op are per event; at most the 124,000 remaining events
// are timed.
//
//	go test -run '^$' -bench 'ApplyGroups' -benchtime 20000x -benchmem ./projections/
func BenchmarkApplyGroups(b *testing.B) {
	events := realisticLog(b, 40_000, true, true)
	const warm = 120_000
	for _, group := range []int{27, 400} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			benchApplyAfter(b, events, warm, 21<<20, group)
		})
	}
}
