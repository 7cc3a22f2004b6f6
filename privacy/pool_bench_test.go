package privacy

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
)

// BenchmarkKeyPoolCommit times the key pool's background commit per key
// (one claim and one new pool key, both random ids), in a key file that
// already holds 20,000 subjects' keys, for the batch each commit holds
// (the claims of a ClaimInterval, or of the pool's last three quarters
// when it runs low: 1,300 new subjects a second, the bench's first
// seconds, give 650 at 500 ms); cpu-ns/op is the process's CPU time in
// the commits, steadier than the wall time on a shared machine:
//
//	go test -run '^$' -bench KeyPoolCommit -benchmem ./privacy/
func BenchmarkKeyPoolCommit(b *testing.B) {
	for _, batch := range []int{64, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := OpenFileStore(filepath.Join(b.TempDir(), "keys.db"), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			kek, err := ParseKEK(make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			r := &Keyring{keks: []*KEK{kek}}
			n := 0
			records := func(count int) []Record {
				recs := make([]Record, count)
				for i := range recs {
					rec, _, err := r.newRecord()
					if err != nil {
						b.Fatal(err)
					}
					recs[i] = rec
				}
				return recs
			}
			claims := func(recs []Record) []poolClaim {
				cs := make([]poolClaim, len(recs))
				for i, rec := range recs {
					n++
					cs[i] = poolClaim{sub: Subject{Source: "reewild", ID: fmt.Sprintf("U%08x", n*2654435761)}, id: rec.ID}
				}
				return cs
			}
			pool := records(20000)
			if err := s.commitPool(pool, nil, nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			if err := s.commitPool(nil, claims(pool), nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			pool = records(batch)
			if err := s.commitPool(pool, nil, nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var cpu time.Duration
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				add := records(batch)
				cs := claims(pool)
				b.StartTimer()
				before := cpuTime()
				if err := s.commitPool(add, cs, nil, eventstore.Start); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - before
				pool = add
			}
			// The process's CPU time (user and system) in the commits:
			// steadier than the wall time on a shared machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
