package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// BenchmarkAppend measures durable appends of one ~3 KB event, each to a new
// stream (a webhook for a new receipt), by 1, 16 and 64 concurrent writers:
// group commit, one transaction per append (WithNoGroupCommit), and bbolt's own
// DB.Batch with its default 10 ms delay. b.N is the total number of appends.
//
//	go test -run x -bench Append -benchtime 2000x ./eventstore/bolt/
func BenchmarkAppend(b *testing.B) {
	modes := []struct {
		name string
		opts bolt.Options
	}{
		{"GroupCommit", bolt.Options{}},
		{"NoGroupCommit", bolt.WithNoGroupCommit(bolt.Options{})},
		{"BoltBatch10ms", bolt.WithBoltBatch(bolt.Options{})},
	}
	for _, writers := range []int{1, 16, 64} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, m.name), func(b *testing.B) {
				benchAppend(b, m.opts, writers)
			})
		}
	}
}

func benchAppend(b *testing.B, opts bolt.Options, writers int) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// A Reewild-sized body: normalized fields and the raw delivery.
	data := []byte(`{"stage":"AWARDED","points":"1656.54","raw":"` + strings.Repeat("0123456789abcdef", 180) + `"}`)
	meta := []byte(`{"source":"reewild","provider_event_type":"receipt.awarded","received_at":"2025-01-01T00:00:00Z",` +
		`"scheme":"hmac-sha256","body_sha256":"` + strings.Repeat("ab", 32) + `","dedupe_key":"k"}`)
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	latencies := make([][]time.Duration, writers) // each writer's appends, durable
	for w := range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				e := aggregate.Event{ID: fmt.Sprintf("%036d", i), Type: aggregate.TypeReceiptStageRecorded, Data: data, Metadata: meta}
				t0 := time.Now()
				if _, err := s.Append(ctx, fmt.Sprintf("receipt-bench.%d", i), eventstore.NoStream, e); err != nil {
					failed.Store(err)
					return
				}
				latencies[w] = append(latencies[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	st := s.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Appends)/float64(st.Commits), "appends/commit")
	}
	// The latency of one durable append (its share of a commit and fsync).
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
