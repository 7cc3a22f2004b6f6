package projections_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/receiptd/receiptd/projections"
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
			if b.N > len(events)-warm {
				b.Fatalf("b.N %d: at most %d events", b.N, len(events)-warm)
			}
			db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"), projections.WithCacheBytes(21<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for i := 0; i < warm; i += 4096 {
				if err := db.Apply(events[i:min(i+4096, warm)]); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			rest := events[warm : warm+b.N]
			for i := 0; i < len(rest); i += group {
				if err := db.Apply(rest[i:min(i+group, len(rest))]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
