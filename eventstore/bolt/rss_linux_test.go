package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/internal/membudget"
)

// memStatus returns RssAnon and RssFile of this process, in bytes, from
// /proc/self/status.
func memStatus(tb testing.TB) (anon, file int64) {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range []struct {
			key string
			dst *int64
		}{{"RssAnon:", &anon}, {"RssFile:", &file}} {
			if v, ok := strings.CutPrefix(line, f.key); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				*f.dst = kb << 10
			}
		}
	}
	return anon, file
}

// evict drops the file's pages from the page cache (a cold read next).
func evict(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		tb.Logf("fadvise: %v", err)
	}
}

// BenchmarkScanRSS reads a log of the bench's deliveries (10,000 receipts
// and 1,000 enrolments: 61,000 v2 events) from Start to its head with
// ReadAll in batches of 1,024, as a rebuild does, from a cold page cache
// (the file's pages evicted with fadvise), and reports the scan's time and
// how much the process's resident file-backed memory (RssFile, from
// /proc/self/status) grew: with the scan's madvise calls (see scanRange)
// and without them, alternately, three times each; the figures are the
// medians.
//
//	go test -run '^$' -bench ScanRSS -benchtime 1x ./eventstore/bolt/
func BenchmarkScanRSS(b *testing.B) {
	evs := benchLog(b, 10000)
	path := filepath.Join(b.TempDir(), "events.db")
	appendAll(b, path, bolt.Options{}, evs, true)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	modes := []struct {
		name string
		opts bolt.Options
	}{
		{"advised", bolt.Options{}},
		{"unadvised", bolt.WithoutScanAdvice(bolt.Options{})},
	}
	type result struct{ ms, rssMB []float64 }
	results := make([]result, len(modes))
	for range b.N {
		for round := 0; round < 3; round++ {
			for i, m := range modes {
				evict(b, path)
				s, err := bolt.Open(path, m.opts)
				if err != nil {
					b.Fatal(err)
				}
				_, file0 := memStatus(b)
				start := time.Now()
				n := 0
				for pos := eventstore.Start; ; {
					batch, err := s.ReadAll(context.Background(), pos, 1024)
					if err != nil {
						b.Fatal(err)
					}
					if len(batch) == 0 {
						break
					}
					n += len(batch)
					pos = batch[len(batch)-1].Position
				}
				elapsed := time.Since(start)
				_, file1 := memStatus(b)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				if n != len(evs) {
					b.Fatalf("read %d events, want %d", n, len(evs))
				}
				results[i].ms = append(results[i].ms, float64(elapsed.Microseconds())/1000)
				results[i].rssMB = append(results[i].rssMB, float64(file1-file0)/(1<<20))
			}
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, m := range modes {
		b.ReportMetric(median(results[i].ms), m.name+"-ms")
		b.ReportMetric(median(results[i].rssMB), m.name+"-RssFile-MB")
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MB")
	_ = fmt.Sprint
}

// BenchmarkFollowRSS appends the bench's deliveries (61,000 v2 events, 64
// writers) to a new file while one subscriber follows the log live, as the
// projection runner does, and reports how much the process's resident
// file-backed memory (RssFile) grew by the end and after 1.5 s idle, and
// the time. The map is
// sized for 1 GiB from the start, as it is for a log past 1 GiB (bbolt
// grows it by 1 GiB at a time, and a remap drops every resident page): as
// the store
// was (no tail, no trimming, no scan advice) and as it is, alternately,
// three times each; the figures are the medians.
//
//	go test -run '^$' -bench FollowRSS -benchtime 1x ./eventstore/bolt/
func BenchmarkFollowRSS(b *testing.B) {
	evs := benchLog(b, 10000)
	modes := []struct {
		name string
		opts bolt.Options
	}{
		{"before", bolt.WithoutScanAdvice(bolt.Options{TailBytes: -1, TrimInterval: -1, InitialMmapSize: 1 << 30})},
		{"after", bolt.Options{InitialMmapSize: 1 << 30}},
	}
	type result struct{ ms, rssMB, idleMB, tailShare []float64 }
	results := make([]result, len(modes))
	for range b.N {
		for round := 0; round < 3; round++ {
			for i, m := range modes {
				path := filepath.Join(b.TempDir(), "events.db")
				s, err := bolt.Open(path, m.opts)
				if err != nil {
					b.Fatal(err)
				}
				_, file0 := memStatus(b)
				ctx, cancel := context.WithCancel(context.Background())
				seen := make(chan struct{})
				var n int
				go func() {
					_ = s.Subscribe(ctx, eventstore.Start, func(_ context.Context, batch []eventstore.RecordedEvent) error {
						if n += len(batch); n == len(evs) {
							close(seen)
						}
						return nil
					})
				}()
				start := time.Now()
				appendTo(b, s, evs)
				<-seen
				elapsed := time.Since(start)
				_, file1 := memStatus(b)
				// What stays resident once the log is idle for longer than
				// the trim interval.
				time.Sleep(1500 * time.Millisecond)
				_, file2 := memStatus(b)
				cancel()
				st := s.Stats()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				results[i].ms = append(results[i].ms, float64(elapsed.Microseconds())/1000)
				results[i].rssMB = append(results[i].rssMB, float64(file1-file0)/(1<<20))
				results[i].idleMB = append(results[i].idleMB, float64(file2-file0)/(1<<20))
				results[i].tailShare = append(results[i].tailShare, float64(st.TailEvents)/float64(st.TailEvents+st.FileEvents))
			}
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, m := range modes {
		b.ReportMetric(median(results[i].ms), m.name+"-ms")
		b.ReportMetric(median(results[i].rssMB), m.name+"-RssFile-MB")
		b.ReportMetric(median(results[i].idleMB), m.name+"-idle-RssFile-MB")
		b.ReportMetric(median(results[i].tailShare), m.name+"-from-tail")
	}
}

// With Options.MappedLimit, the trimmer drops the file's pages as soon as
// the process's resident file pages pass the limit, not at its next
// regular trim (TrimInterval, a second): reading every stream of a log
// (random reads through the map, as deciding on a cache miss does)
// leaves at most a few polls' worth resident. Without a limit the pages
// stay until the regular trim, which the test checks first so that it
// can fail.
func TestTrimKeepsMappedPagesUnderTheLimit(t *testing.T) {
	if _, ok := membudget.ResidentMapped(); !ok {
		t.Skip("the process's resident file pages cannot be read here (/proc/self/statm)")
	}
	evs := benchLog(t, 2000)
	path := filepath.Join(t.TempDir(), "events.db")
	appendAll(t, path, bolt.Options{}, evs, true)
	streams := map[string]bool{}
	for _, e := range evs {
		streams[e.stream] = true
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	grown := func(limit int64) int64 {
		t.Helper()
		s, err := bolt.Open(path, bolt.Options{MappedLimit: limit, TailBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, file0 := memStatus(t)
		start := time.Now()
		for stream := range streams {
			if _, err := s.ReadStream(context.Background(), stream, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * membudget.MappedPollInterval)
		_, file1 := memStatus(t)
		if time.Since(start) > 700*time.Millisecond {
			t.Skipf("reading %d streams and waiting took %v: too slow a machine to tell a regular trim from the limit's", len(streams), time.Since(start))
		}
		return file1 - file0
	}
	if grew := grown(0); grew < fi.Size()/4 {
		t.Fatalf("without a limit, reading every stream of a %d MiB log left only %d MiB more resident: the test cannot tell the limit's trims", fi.Size()>>20, grew>>20)
	}
	_, base := memStatus(t)
	if grew := grown(base + 4<<20); grew > 12<<20 {
		t.Errorf("with a limit 4 MiB above what was resident, reading every stream of a %d MiB log left %d MiB more resident", fi.Size()>>20, grew>>20)
	}
}
