package bolt_test

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/bench/benchdata"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

var (
	loadedProfile = flag.String("loaded.profile", "", "BenchmarkAppendLoaded: write a CPU profile of each mode's last measured phase to this path + \".\" + mode")
	loadedOnly    = flag.String("loaded.modes", "", "BenchmarkAppendLoaded: run only these modes (comma-separated)")
)

var (
	sequenceMu     sync.Mutex
	sequenceEvents = map[int][]loggedEvent{}
)

// benchSequence returns the first n distinct deliveries the bench sends
// (`go run ./bench` with its defaults: 250,000 receipts and 25,000 users,
// seed 1, every delivery once in the order of a random permutation of the
// universe; its re-deliveries are left out, the server appends nothing for
// them), as the webhook handler appends them (eventcodec's v2 events).
func benchSequence(tb testing.TB, n int) []loggedEvent {
	tb.Helper()
	sequenceMu.Lock()
	defer sequenceMu.Unlock()
	if evs, ok := sequenceEvents[n]; ok {
		return evs
	}
	u := benchdata.Universe{Seed: 1, Users: 25000, Receipts: 250000}
	rng := rand.New(rand.NewPCG(1, 1^0x5eed))
	perm := make([]int, u.Size())
	for i := range perm {
		perm[i] = i
	}
	rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte("bench-secret-0123456789")}})
	if err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2025, 11, 21, 15, 5, 3, 0, time.UTC)
	out := make([]loggedEvent, n)
	var (
		wg     sync.WaitGroup
		failed error
		once   sync.Once
	)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				body := u.Delivery(nil, perm[i])
				sum := sha256.Sum256(body)
				d := webhook.Delivery{Body: body, BodySHA256: hex.EncodeToString(sum[:]), ReceivedAt: at,
					Verification: webhook.Verification{Scheme: "hmac-sha256", KeyID: "sha256:0badc0de"}}
				nd, err := p.Normalize(d)
				if err == nil {
					id := webhook.EventID("reewild", nd.Fact.DedupeKey, d.BodySHA256)
					meta := aggregate.Metadata{Source: "reewild", ProviderEventType: nd.EventType, ReceivedAt: at,
						Scheme: d.Verification.Scheme, KeyID: d.Verification.KeyID, BodySHA256: d.BodySHA256,
						DedupeKey: nd.Fact.DedupeKey, SlotKey: nd.Fact.SlotKey, CorrelationID: id, CausationID: id}
					var v2 aggregate.Event
					if v2, err = eventcodec.Encode(id, nd.Fact, meta, body); err == nil {
						out[i] = loggedEvent{stream: nd.Fact.Stream, v2: v2, body: len(body)}
						continue
					}
				}
				once.Do(func() { failed = err })
				return
			}
		})
	}
	wg.Wait()
	if failed != nil {
		tb.Fatal(failed)
	}
	sequenceEvents[n] = out
	return out
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// copyFile copies src to dst, synced (so that evict can drop its pages).
func copyFile(tb testing.TB, dst, src string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// The loaded benchmark's sizes: a log of loadedFill of the bench's
// deliveries (about 230,000 streams), then loadedMeasure more appended and
// measured.
const (
	loadedFill    = 300_000
	loadedMeasure = 30_000
	loadedRounds  = 3
)

// loadedModes are the store configurations BenchmarkAppendLoaded compares.
type loadedMode struct {
	name string
	opts bolt.Options
}

var loadedModes = []loadedMode{
	{"schema2", bolt.WithSchema2(bolt.WithPageSize(bolt.Options{}, 4096))},
	{"eager-page4k", bolt.WithPageSize(bolt.Options{IndexBufferBytes: -1}, 4096)},
	{"lazy-page4k", bolt.WithPageSize(bolt.Options{}, 4096)},
	{"lazy", bolt.Options{}},
	{"lazy-nofreelistsync", bolt.Options{NoFreelistSync: true}},
	{"lazy-page16k", bolt.WithPageSize(bolt.Options{}, 16384)},
}

// BenchmarkAppendLoaded measures the committer where production runs it:
// a log of the bench's first 300,000 distinct deliveries (v2 events,
// 187,719 streams, so the pages of the stream index that an append dirties
// are random ones), appended by 64 writers, then 30,000 more appended by 64
// writers and measured: the process's CPU time (user + system, getrusage)
// per append, appends per commit, pages written per commit (bbolt's
// counter, the meta page included), and the file's size per event after
// the fill (as ls sees it, the store closed) beside the mean delivered
// body. Each mode fills its own file once and copies it as a crash would
// leave it (so that a lazy index starts the measured appends with the
// entries in memory of a running store); every round appends to a fresh
// copy of that, the modes alternating, three rounds; the figures are the
// medians. The map is sized as the server sizes it (64 GiB). The machine
// may be busy: CPU time per append is the figure to compare, wall time is
// not. Modes: schema2 (the layout before schema 3, with 4 KiB pages as
// then), eager-page4k (schema 3, the index written with every commit),
// lazy-page4k (schema 3, 4 KiB pages), lazy (the store as the server runs
// it: 8 KiB pages), lazy-nofreelistsync (bbolt's freelist not written per
// commit) and lazy-page16k. -loaded.modes picks some.
//
//	go test -run '^$' -bench AppendLoaded -benchtime 1x -timeout 1h ./eventstore/bolt/
//
// -loaded.profile=PATH writes a CPU profile of each mode's last measured
// phase to PATH.MODE.
func BenchmarkAppendLoaded(b *testing.B) {
	evs := benchSequence(b, loadedFill+loadedMeasure)
	fill, measure := evs[:loadedFill], evs[loadedFill:]
	dir := b.TempDir()
	const mmap = 64 << 30
	modes := loadedModes
	if *loadedOnly != "" {
		only := strings.Split(*loadedOnly, ",")
		modes = slices.DeleteFunc(slices.Clone(modes), func(m loadedMode) bool { return !slices.Contains(only, m.name) })
	}
	templates := make([]string, len(modes))
	for i, m := range modes {
		opts := m.opts
		opts.InitialMmapSize = mmap
		filled := filepath.Join(dir, m.name+".filled.db")
		templates[i] = filepath.Join(dir, m.name+".template.db")
		start := time.Now()
		s, err := bolt.Open(filled, opts)
		if err != nil {
			b.Fatal(err)
		}
		appendTo(b, s, fill)
		took := time.Since(start)
		copyFile(b, templates[i], filled)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		st, err := bolt.Space(filled)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: filled %d events in %v: file %d B (%.0f B/event), used %d B, free pages %.1f%%, freelist %d B; %s",
			m.name, len(fill), took.Round(time.Millisecond), st.FileBytes, float64(st.FileBytes)/float64(len(fill)),
			st.HighWater, 100*float64(st.FreeBytes)/float64(st.HighWater), st.FreelistBytes, strings.Join(st.Buckets, "; "))
		b.ReportMetric(float64(st.FileBytes)/float64(len(fill)), m.name+"-file-B/event")
	}
	body := 0
	for _, e := range fill {
		body += e.body
	}
	b.ReportMetric(float64(body)/float64(len(fill)), "body-B")
	type result struct{ cpuUS, perCommit, pages, rate, pending []float64 }
	results := make([]result, len(modes))
	for range b.N {
		for round := range loadedRounds {
			for i, m := range modes {
				path := filepath.Join(dir, m.name+".db")
				copyFile(b, path, templates[i])
				opts := m.opts
				opts.InitialMmapSize = mmap
				s, err := bolt.Open(path, opts)
				if err != nil {
					b.Fatal(err)
				}
				if *loadedProfile != "" && round == loadedRounds-1 {
					f, err := os.Create(*loadedProfile + "." + m.name)
					if err != nil {
						b.Fatal(err)
					}
					if err := pprof.StartCPUProfile(f); err != nil {
						b.Fatal(err)
					}
					defer f.Close()
				}
				st0, tx0 := s.Stats(), bolt.TxStats(s)
				cpu0, start := cpuTime(b), time.Now()
				appendTo(b, s, measure)
				cpu, elapsed := cpuTime(b)-cpu0, time.Since(start)
				st, tx := s.Stats(), bolt.TxStats(s)
				pending := bolt.PendingEntries(s)
				if *loadedProfile != "" && round == loadedRounds-1 {
					pprof.StopCPUProfile()
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				commits := float64(st.Commits - st0.Commits)
				n := float64(len(measure))
				results[i].cpuUS = append(results[i].cpuUS, float64(cpu.Microseconds())/n)
				results[i].perCommit = append(results[i].perCommit, n/commits)
				results[i].pages = append(results[i].pages, float64(tx.GetWrite()-tx0.GetWrite())/commits)
				results[i].rate = append(results[i].rate, n/elapsed.Seconds())
				results[i].pending = append(results[i].pending, float64(pending))
				if err := os.Remove(path); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, m := range modes {
		b.Logf("%s: cpu-us/append %.1f, appends/commit %.1f, pages/commit %.1f, appends/s %.0f, index entries in memory at the end %.0f (each round)",
			m.name, results[i].cpuUS, results[i].perCommit, results[i].pages, results[i].rate, results[i].pending)
		b.ReportMetric(median(results[i].cpuUS), m.name+"-cpu-us/append")
		b.ReportMetric(median(results[i].perCommit), m.name+"-appends/commit")
		b.ReportMetric(median(results[i].pages), m.name+"-pages/commit")
		b.ReportMetric(median(results[i].rate), m.name+"-appends/s")
	}
}

// BenchmarkOpenAfterCrash measures Open of a file as a crash leaves it: the
// bench's first 300,000 distinct deliveries appended by 64 writers, the
// file copied with the store still open (nothing committing). In schema 3
// Open then reads the events whose index entries were held in memory
// (those after the indexed position: reported as read-events); schema 2
// reads none; with NoFreelistSync bbolt rebuilds its freelist by reading
// every page of the file. Each round opens a fresh copy with its pages in
// the page cache (warm) and one with them dropped (cold, fadvise); three
// rounds, the modes alternating; medians.
//
//	go test ./eventstore/bolt/ -run '^$' -bench OpenAfterCrash -benchtime 1x -timeout 1h
func BenchmarkOpenAfterCrash(b *testing.B) {
	evs := benchSequence(b, loadedFill+loadedMeasure)[:loadedFill]
	dir := b.TempDir()
	modes := []loadedMode{
		{"schema2", bolt.WithSchema2(bolt.Options{})},
		{"lazy", bolt.Options{}},
		{"lazy-nofreelistsync", bolt.Options{NoFreelistSync: true}},
	}
	images := make([]string, len(modes))
	for i, m := range modes {
		path := filepath.Join(dir, m.name+".db")
		s, err := bolt.Open(path, m.opts)
		if err != nil {
			b.Fatal(err)
		}
		appendTo(b, s, evs)
		images[i] = filepath.Join(dir, m.name+".crashed.db")
		copyFile(b, images[i], path)
		if strings.HasPrefix(m.name, "lazy") {
			b.ReportMetric(float64(len(evs))-float64(bolt.IndexedPosition(s)), m.name+"-read-events")
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	type result struct{ warm, cold []float64 }
	results := make([]result, len(modes))
	open := func(m loadedMode, path string, cold bool) float64 {
		copyFile(b, path, images[slices.IndexFunc(modes, func(x loadedMode) bool { return x.name == m.name })])
		if cold {
			evict(b, path)
		}
		start := time.Now()
		s, err := bolt.Open(path, m.opts)
		if err != nil {
			b.Fatal(err)
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			b.Fatal(err)
		}
		return ms
	}
	for range b.N {
		for range loadedRounds {
			for i, m := range modes {
				path := filepath.Join(dir, m.name+".open.db")
				results[i].warm = append(results[i].warm, open(m, path, false))
				results[i].cold = append(results[i].cold, open(m, path, true))
			}
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, m := range modes {
		b.Logf("%s: open warm %v ms, cold %v ms (each round)", m.name, results[i].warm, results[i].cold)
		b.ReportMetric(median(results[i].warm), m.name+"-warm-ms")
		b.ReportMetric(median(results[i].cold), m.name+"-cold-ms")
	}
}
