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

var loadedProfile = flag.String("loaded.profile", "", "BenchmarkAppendLoaded: write a CPU profile of each mode's last measured phase to this path + \".\" + mode")

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
var loadedModes = []struct {
	name string
	opts bolt.Options
}{
	{"grow16MiB", bolt.WithGrowBy(bolt.Options{}, 16<<20)},
	{"current", bolt.Options{}},
}

// BenchmarkAppendLoaded measures the committer where production runs it:
// a log of the bench's first 300,000 distinct deliveries (v2 events, about
// 230,000 streams, so the pages of the stream index that an append dirties
// are random ones), appended by 64 writers, then 30,000 more appended by 64
// writers and measured: the process's CPU time (user + system, getrusage)
// per append, appends per commit, pages written per commit (bbolt's
// counter, the meta page included), and the file's size per event after
// the fill beside the mean delivered body. Each mode fills its own file
// once; every round appends to a fresh copy of it, the modes alternating,
// three rounds; the figures are the medians. The map is sized as the
// server sizes it (8 GiB). The machine may be busy: CPU time per append is
// the figure to compare, wall time is not.
//
//	go test -run '^$' -bench AppendLoaded -benchtime 1x -timeout 1h ./eventstore/bolt/
//
// -loaded.profile=PATH writes a CPU profile of each mode's last measured
// phase to PATH.MODE.
func BenchmarkAppendLoaded(b *testing.B) {
	evs := benchSequence(b, loadedFill+loadedMeasure)
	fill, measure := evs[:loadedFill], evs[loadedFill:]
	dir := b.TempDir()
	const mmap = 8 << 30
	templates := make([]string, len(loadedModes))
	for i, m := range loadedModes {
		opts := m.opts
		opts.InitialMmapSize = mmap
		templates[i] = filepath.Join(dir, m.name+".template.db")
		start := time.Now()
		appendAll(b, templates[i], opts, fill, true)
		st, err := bolt.Space(templates[i])
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: filled %d events in %v: file %d B (%.0f B/event), used %d B, free pages %.1f%%",
			m.name, len(fill), time.Since(start).Round(time.Millisecond), st.FileBytes, float64(st.FileBytes)/float64(len(fill)),
			st.HighWater, 100*float64(st.FreeBytes)/float64(st.HighWater))
		for _, l := range st.Buckets {
			b.Logf("%s: %s", m.name, l)
		}
		b.Logf("%s: freelist %d B", m.name, st.FreelistBytes)
		b.ReportMetric(float64(st.FileBytes)/float64(len(fill)), m.name+"-file-B/event")
	}
	body := 0
	for _, e := range fill {
		body += e.body
	}
	b.ReportMetric(float64(body)/float64(len(fill)), "body-B")
	type result struct{ cpuUS, perCommit, pages, rate []float64 }
	results := make([]result, len(loadedModes))
	for range b.N {
		for round := range loadedRounds {
			for i, m := range loadedModes {
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
	for i, m := range loadedModes {
		b.Logf("%s: cpu-us/append %.1f, appends/commit %.1f, pages/commit %.1f, appends/s %.0f (each round)",
			m.name, results[i].cpuUS, results[i].perCommit, results[i].pages, results[i].rate)
		b.ReportMetric(median(results[i].cpuUS), m.name+"-cpu-us/append")
		b.ReportMetric(median(results[i].perCommit), m.name+"-appends/commit")
		b.ReportMetric(median(results[i].pages), m.name+"-pages/commit")
		b.ReportMetric(median(results[i].rate), m.name+"-appends/s")
	}
}
