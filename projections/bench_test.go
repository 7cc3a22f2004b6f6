package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

// realisticEvents returns the events of n whole receipts as the webhook
// handler writes them (v1 JSON data with the provider's raw body, metadata
// like the handler's), with positions 1…: per receipt the five pipeline
// stages and AWARDED (FAILED for one in five), a user enrolment for one in
// ten. With shuffle, a receipt's events lie anywhere in the log (the
// bench's out-of-order load); without, they follow each other.
func realisticEvents(tb testing.TB, n int, shuffle bool) []eventstore.RecordedEvent {
	return realisticLog(tb, n, shuffle, false)
}

// realisticLog is realisticEvents, its events in the v2 encoding
// (eventcodec: what ingest writes) if v2.
func realisticLog(tb testing.TB, n int, shuffle, v2 bool) []eventstore.RecordedEvent {
	return sampledLog(tb, n, shuffle, v2, 1)
}

// sampledLog is realisticLog keeping each event with probability keep:
// with shuffle, the start of a shuffled log of n whole receipts (what the
// bench's rebuild replays: the first 250,000 of the deliveries of 250,000
// receipts is the sample 0.134 without its re-deliveries).
func sampledLog(tb testing.TB, n int, shuffle, v2 bool, keep float64) []eventstore.RecordedEvent {
	tb.Helper()
	raws := map[aggregate.Stage][]byte{}
	for s, f := range map[aggregate.Stage]string{
		aggregate.StageUploaded: "receipt.uploaded", aggregate.StageExtracted: "receipt.extracted",
		aggregate.StageEnriched: "receipt.enriched", aggregate.StageValidated: "receipt.validated",
		aggregate.StageScored: "receipt.scored", aggregate.StageAwarded: "rewards.awarded", aggregate.StageFailed: "receipt.failed",
	} {
		raw, err := os.ReadFile(filepath.Join("..", "examples", "reewild", f+".json"))
		if err != nil {
			tb.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			tb.Fatal(err)
		}
		raws[s] = c.Bytes()
	}
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	type pending struct {
		stream, typ string
		data        any
		provider    string
	}
	var all []pending
	for i := range n {
		id := fmt.Sprintf("rcpt-%08d-%04x", i, rng.Uint32()&0xffff)
		user := fmt.Sprintf("user-%06d", rng.IntN(max(n/4, 1)))
		at := t0.Add(time.Duration(i) * time.Second)
		terminal := aggregate.StageAwarded
		if rng.IntN(5) == 0 {
			terminal = aggregate.StageFailed
		}
		// A new slice: appending to aggregate.Stages[:5] would overwrite
		// its AWARDED.
		for j, s := range append(slices.Clone(aggregate.Stages[:5]), terminal) {
			f := aggregate.StageRecorded{
				Source: "reewild", ReceiptID: id, UserID: user, Stage: s, OccurredAt: tp(at.Add(time.Duration(j) * time.Second)),
				BodySHA256: fmt.Sprintf("%064x", rng.Uint64()), Raw: raws[s],
			}
			switch s {
			case aggregate.StageExtracted, aggregate.StageScored:
				amt := decimal.New(rng.Int64N(100000), -2)
				f.Merchant, f.Currency, f.Amount = "TESCO STORES 3170", "GBP", &amt
			case aggregate.StageAwarded:
				pts := decimal.New(rng.Int64N(100000), -2)
				f.Award = &aggregate.Award{TransactionID: "tx-" + id, Points: pts, BonusPoints: decimal.Zero, HealthPoints: decimal.New(rng.Int64N(5000), -2),
					CO2e: decimal.New(rng.Int64N(1e6), -5), GreenProducts: rng.Int64N(10),
					Snapshot: &aggregate.Snapshot{LifetimePoints: pts, AvailablePoints: pts, NumTransactions: int64(i)}}
			case aggregate.StageFailed:
				f.Failure = &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "Receipt validation failed"}
			}
			all = append(all, pending{aggregate.StreamID(aggregate.CategoryReceipt, "reewild", id), aggregate.TypeReceiptStageRecorded, f, "receipt." + string(s)})
		}
		if i%10 == 0 {
			all = append(all, pending{aggregate.StreamID(aggregate.CategoryUser, "reewild", user), aggregate.TypeUserEnrolled,
				aggregate.UserEnrolled{Source: "reewild", UserID: user, BodySHA256: fmt.Sprintf("%064x", rng.Uint64()), Raw: raws[aggregate.StageUploaded]}, "user.enrolled"})
		}
	}
	if keep < 1 {
		kept := all[:0]
		for _, p := range all {
			if rng.Float64() < keep {
				kept = append(kept, p)
			}
		}
		all = kept
	}
	if shuffle {
		rng.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
	}
	out := make([]eventstore.RecordedEvent, 0, len(all))
	for i, p := range all {
		received := t0.Add(time.Duration(i) * time.Millisecond)
		m := aggregate.Metadata{
			Source: "reewild", ProviderEventType: p.provider, DeliveryID: fmt.Sprintf("dlv-%d", i),
			ReceivedAt: received, Scheme: "hmac-sha256", KeyID: "sha256:0123456789ab",
			BodySHA256: fmt.Sprintf("%064x", i), DedupeKey: fmt.Sprintf("%s:%064x", p.provider, i), SlotKey: "stage:" + p.provider,
		}
		var ev aggregate.Event
		if v2 {
			var raw []byte
			switch f := p.data.(type) {
			case aggregate.StageRecorded:
				raw, f.Raw = f.Raw, nil
				p.data = f
			case aggregate.UserEnrolled:
				raw, f.Raw = f.Raw, nil
				p.data = f
			}
			var err error
			ev, err = eventcodec.Encode(fmt.Sprintf("%032x", i), aggregate.Fact{Stream: p.stream, Type: p.typ, Data: p.data, DedupeKey: m.DedupeKey, SlotKey: m.SlotKey}, m, raw)
			if err != nil {
				tb.Fatal(err)
			}
		} else {
			data, err := json.Marshal(p.data)
			if err != nil {
				tb.Fatal(err)
			}
			meta, err := json.Marshal(m)
			if err != nil {
				tb.Fatal(err)
			}
			ev = aggregate.Event{ID: fmt.Sprintf("%032x", i), Type: p.typ, Data: data, Metadata: meta}
		}
		pos := uint64(i + 1)
		out = append(out, eventstore.RecordedEvent{
			Event:    ev,
			Stream:   p.stream,
			Position: eventstore.Position{Commit: pos, Prepare: pos}, RecordedAt: received,
		})
	}
	return out
}

// BenchmarkApply applies whole receipts' events (realistic payloads, in
// batches of 64 as a live Runner gets them under load) to read models that
// already hold 20,000 receipts; ns/op is per event.
//
//	go test -run '^$' -bench 'Apply$' -benchmem ./projections/
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct{ shuffled, v2 bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		b.Run(fmt.Sprintf("shuffled=%v/v2=%v", c.shuffled, c.v2), func(b *testing.B) {
			const warm = 20_000
			events := realisticLog(b, warm+max(b.N/6, 1)+1, c.shuffled, c.v2)
			db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			// The first events (a warm read model) are not timed.
			nWarm := len(events) - b.N
			if nWarm < 0 {
				b.Fatalf("log too short: %d events for b.N %d", len(events), b.N)
			}
			for i := 0; i < nWarm; i += 4096 {
				if err := db.Apply(events[i:min(i+4096, nWarm)]); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			rest := events[nWarm:]
			for i := 0; i < len(rest); i += 64 {
				if err := db.Apply(rest[i:min(i+64, len(rest))]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkApplyLarge applies events (v2, batches of 64) of a universe of
// 40,000 whole receipts shuffled together (the bench's out-of-order load
// at a smaller scale: a receipt's events lie far apart in the log) whose
// state outgrows the record cache, to read models that already hold the
// first 200,000 of the log's 244,000 events. ns/op is per event; at most
// the 44,000 remaining events are timed.
//
//	go test -run '^$' -bench 'ApplyLarge' -benchtime 30000x -benchmem ./projections/
func BenchmarkApplyLarge(b *testing.B) {
	events := realisticLog(b, 40_000, true, true)
	const warm = 200_000
	for _, budget := range []int64{4 << 20, projections.DefaultCacheBytes} {
		b.Run(fmt.Sprintf("cache=%dMiB", budget>>20), func(b *testing.B) {
			benchApplyAfter(b, events, warm, budget, 64)
		})
	}
}

// benchApplyAfter opens read models with a record cache of cacheBytes,
// applies the first warm events untimed, then times applying the next b.N
// in groups of group events (ns/op, B/op and allocs/op per event; also
// the process's CPU time per event, steadier on a shared machine).
func benchApplyAfter(b *testing.B, events []eventstore.RecordedEvent, warm int, cacheBytes int64, group int) {
	if b.N > len(events)-warm {
		b.Fatalf("b.N %d: at most %d events", b.N, len(events)-warm)
	}
	db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"), projections.WithCacheBytes(cacheBytes))
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
}

// cpuTime is the CPU time (user and system) the process has used: on a
// machine shared with other work, a steadier measure than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStore is an eventstore.Store reading from memory, so that a rebuild
// benchmark measures the read models rather than the log's file.
type memStore struct {
	eventstore.Store
	events []eventstore.RecordedEvent
}

func (m *memStore) Head(context.Context) (eventstore.Position, error) {
	if len(m.events) == 0 {
		return eventstore.Start, nil
	}
	return m.events[len(m.events)-1].Position, nil
}

func (m *memStore) ReadAll(_ context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	i := int(after.Commit) // positions are 1…n
	if i >= len(m.events) {
		return nil, nil
	}
	return m.events[i:min(i+limit, len(m.events))], nil
}

// BenchmarkRebuildRealistic rebuilds every read model from an in-memory
// log of whole receipts with realistic payloads (see realisticEvents),
// their events shuffled across the log, and reports events/s.
//
//	go test -run '^$' -bench RebuildRealistic -benchtime 3x -benchmem ./projections/
func BenchmarkRebuildRealistic(b *testing.B) {
	for _, c := range []struct {
		n  int
		v2 bool
	}{{10_000, false}, {10_000, true}, {40_000, true}} {
		b.Run(fmt.Sprintf("receipts=%d/v2=%v", c.n, c.v2), func(b *testing.B) {
			store := &memStore{events: realisticLog(b, c.n, true, c.v2)}
			b.ReportAllocs()
			b.ResetTimer()
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu0 := cpuTime()
				if _, err := db.Rebuild(context.Background(), store, projections.RebuildOptions{}); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - cpu0
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(len(store.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cpu)/float64(len(store.events)*b.N), "cpu-ns/event")
		})
	}
}

// BenchmarkRebuildBench rebuilds every read model from the kind of log
// the bench's offline rebuild replays: the start (200,000 v2 events) of a
// shuffled log of 250,000 whole receipts, most receipts one or two events
// in, with the record cache the server's default memory budget gives (42
// MiB), and reports events/s and CPU per event.
//
//	go test -run '^$' -bench RebuildBench -benchtime 2x -benchmem ./projections/
func BenchmarkRebuildBench(b *testing.B) {
	store := &memStore{events: sampledLog(b, 250_000, true, true, 0.1333)}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"), projections.WithCacheBytes(42<<20))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		if _, err := db.Rebuild(context.Background(), store, projections.RebuildOptions{}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(store.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu)/float64(len(store.events)*b.N), "cpu-ns/event")
}

// memStatus returns the process's resident memory from /proc/self/status
// (anonymous and file-backed, in bytes): what ps and a container limit
// see. Zero where the file does not exist.
func memStatus() (anon, file int64) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var kb int64
		if n, _ := fmt.Sscanf(string(line), "RssAnon: %d kB", &kb); n == 1 {
			anon = kb << 10
		}
		if n, _ := fmt.Sscanf(string(line), "RssFile: %d kB", &kb); n == 1 {
			file = kb << 10
		}
	}
	return anon, file
}

// BenchmarkRebuildMemory rebuilds every read model from a v2 log of
// 40,000 whole receipts (244k events, shuffled) with record caches of
// 16 MiB (the receipts' state spills) and 256 MiB (it fits), and reports
// the resident memory after it, anonymous and file-backed (the
// read-model file's pages bbolt maps), beside the events/s. The log
// itself is in memory (memStore) and counted in the anonymous figure
// before the rebuild (base-anon-MiB); the figures after are taken after a
// GC that returns free memory to the system and two trim intervals (see
// projections.TrimInterval).
//
//	go test -run '^$' -bench RebuildMemory -benchtime 1x ./projections/
func BenchmarkRebuildMemory(b *testing.B) {
	store := &memStore{events: realisticLog(b, 40_000, true, true)}
	for _, budget := range []int64{16 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("cache=%dMiB", budget>>20), func(b *testing.B) { rebuildMemory(b, store, budget) })
	}
}

func rebuildMemory(b *testing.B, store *memStore, budget int64) {
	debug.FreeOSMemory()
	base, _ := memStatus()
	b.ResetTimer()
	var anon, file int64
	var cpu time.Duration
	for range b.N {
		db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"), projections.WithCacheBytes(budget))
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		if _, err := db.Rebuild(context.Background(), store, projections.RebuildOptions{}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		debug.FreeOSMemory()
		time.Sleep(2 * projections.TrimInterval) // the mapped file's pages are dropped every interval
		anon, file = memStatus()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(store.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu)/float64(len(store.events)*b.N), "cpu-ns/event")
	b.ReportMetric(float64(base)/(1<<20), "base-anon-MiB")
	b.ReportMetric(float64(anon)/(1<<20), "anon-MiB")
	b.ReportMetric(float64(file)/(1<<20), "file-MiB")
}
