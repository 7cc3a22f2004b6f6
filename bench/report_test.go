package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeStats is a measured window of rate answers a second, every one with
// latency lat.
func fakeStats(rate float64, lat time.Duration) *stats {
	s := &stats{window: time.Second, ok: int(rate), codes: map[int]int{200: int(rate)}}
	for range 100 {
		s.lat = append(s.lat, lat)
	}
	return s
}

func fakeRun(ingest, offline float64) *binRun {
	rebuilt := func(rate float64) rebuildResult {
		return rebuildResult{events: 200_000, total: time.Duration(200_000 / rate * float64(time.Second)), cold: true}
	}
	return &binRun{
		ingest: fakeStats(ingest, 30*time.Millisecond), query: fakeStats(9000, 10*time.Millisecond),
		halfIngest: fakeStats(ingest/2, 30*time.Millisecond), queryAlone: fakeStats(30000, time.Millisecond),
		rssDeliveries: 1_000_000, mem: memStatus{rss: 600 << 20, anon: 100 << 20, file: 500 << 20, peak: 700 << 20},
		rb: &rebuildSet{fill: fakeStats(ingest, time.Millisecond), events: 200_000, files: dirSizes{log: 600_000_000, models: 1},
			offline: rebuilt(offline), cold: rebuilt(offline / 2), warm: rebuilt(offline)},
	}
}

// TestReportOldAndNew: the targets table quotes the median of the rounds
// per binary, the new/old ratios and the new binary's verdicts, and says
// when the old binary's growth is not from this run.
func TestReportOldAndNew(t *testing.T) {
	r := &report{
		opts:    options{conns: 64, dup: 0.2, rounds: 2, rebuildDeliveries: 250_000},
		started: time.Now(),
		sizes:   sizeSummary{mean: 1066, perEventType: map[string]float64{}},
		bins:    []receiptdBin{{name: "old", path: "/old"}, {name: "new", path: "/new", extra: "memory_budget: 256MiB\n"}},
		rounds: []*round{
			{ref: fakeStats(40_000, time.Millisecond), runs: []*binRun{fakeRun(5_000, 9_000), fakeRun(21_000, 150_000)}},
			{ref: fakeStats(40_000, time.Millisecond), runs: []*binRun{fakeRun(7_000, 11_000), fakeRun(23_000, 160_000)}},
		},
		grow: []growResult{
			{bin: "new", receipts: 10_000, events: 61_000, fill: fakeStats(20_000, time.Millisecond), catchUp: rebuildResult{events: 61_000, total: time.Second, cold: true}},
			{bin: "new", receipts: 1_000_000, events: 6_100_000, fill: fakeStats(20_000, time.Millisecond), catchUp: rebuildResult{events: 6_100_000, total: 50 * time.Second, cold: true}},
		},
	}
	var buf bytes.Buffer
	r.print(&buf)
	out := buf.String()
	for _, want := range []string{
		"| 1 | durable verified ingest, deliveries/s (64 conns, whole receipts out of order, 20% re-deliveries) | 6,000/s | 22,000/s | ×3.67 |",
		"| 1 | … / bare net/http handler of the same round (reference: 40,000/s) | 15.0% | 55.0% | ×3.67 | ≥ 50% | met |",
		"| 1 | ingest p99 | 30.00 ms | 30.00 ms | ×1.00 | < 25 ms | **missed** |",
		"offline rebuild, `receiptd rebuild` of a 200,000-event log as a whole process, page cache warm: events/s | 10,000/s | 155,000/s | ×15.50 | ≥ 150,000/s | met |",
		"catch-up of empty read models at server start: time (events/s) | not from this run (-grow-baseline) | 50s (122,000/s) |",
		"| 3 | catch-up rate at the largest -grow size / at the smallest | – | 200.0% (61,000 → 6,100,000 events) |",
		"| 4 | query p99 | 10.00 ms | 10.00 ms | ×1.00 | < 5 ms | **missed** |",
		"| 5 | log size per event: log bytes / events in the log (the rebuild's log; mean delivered body 1066 B) | 3,000 B | 3,000 B | ×1.00 | ≤ 1066 B | **missed** |",
		"| 6 | resident memory (VmRSS) after 1,000,000 deliveries | 600 MiB | 600 MiB | ×1.00 | < 512 MiB | **missed** |",
		"| 6 | … of which anonymous (RssAnon) | 100 MiB | 100 MiB | ×1.00 | < 256 MiB | met |",
		"| × | ingest, deliveries/s: new / old, same run |  |  | ×3.67 | ≥ ×2.5 | met |",
		"| × | offline rebuild, events/s: new / old, same run |  |  | ×15.50 | ≥ ×10 | met |",
		"config extra: `memory_budget: 256MiB`",
		"| 2 | old | 7,000/s | 17.5% |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{4, 1}, 2.5}, {[]float64{5, 1, 3}, 3}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if v := median(nil); v == v {
		t.Errorf("median of nothing = %v, want NaN", v)
	}
}

// TestReportSlowConsumers: with -slow-destination, the report sets each
// round's ingest with slow feed consumers beside the new binary's ingest
// of the same round, and judges the ratio of the medians against 10%.
func TestReportSlowConsumers(t *testing.T) {
	r := &report{
		opts:    options{conns: 64, dup: 0.2, rounds: 2, slowDestination: 200 * time.Millisecond, slowSubscribers: 4},
		started: time.Now(),
		sizes:   sizeSummary{mean: 1066, perEventType: map[string]float64{}},
		bins:    []receiptdBin{{name: "new", path: "/new"}},
		rounds: []*round{
			{ref: fakeStats(40_000, time.Millisecond), runs: []*binRun{withCPU(fakeRun(20_000, 150_000), 1)},
				slow: &slowRun{ingest: fakeStats(19_000, time.Millisecond), cpu: cpuUse{server: 1}, requests: 40, lag: 9_000, head: 10_000, subEvents: 200, subscribers: 4}},
			{ref: fakeStats(40_000, time.Millisecond), runs: []*binRun{withCPU(fakeRun(22_000, 150_000), 1)},
				slow: &slowRun{ingest: fakeStats(21_000, time.Millisecond), cpu: cpuUse{server: 1}, requests: 41, lag: 9_500, head: 11_000, subEvents: 210, subscribers: 4}},
		},
	}
	var buf bytes.Buffer
	r.print(&buf)
	out := buf.String()
	for _, want := range []string{
		"#### Slow feed consumers (issue 15): ingest of the receiptd binary without, and with a destination answering in 200ms and 4 SSE subscribers reading an event per 200ms",
		"| 1 | 20,000/s, 30.00 ms / 30.00 ms / 30.00 ms | 19,000/s, 1.00 ms / 1.00 ms / 1.00 ms | 95.0% | 50 µs / 53 µs (105.3%) |",
		"40 requests, 9,000 positions behind at the end (head 10,000) | 200 events read by 4 |",
		"| median | 21,000/s | 20,000/s | 95.2% (met: ≥ 90%) | 48 µs / 50 µs (105.0%) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	r.rounds[1].slow.ingest = fakeStats(10_000, time.Millisecond)
	buf.Reset()
	r.print(&buf)
	if !strings.Contains(buf.String(), "| median | 21,000/s | 14,500/s | 69.0% (**missed**: ≥ 90%) |") {
		t.Errorf("a slowed ingest is not judged missed:\n%s", buf.String())
	}
	if t.Failed() {
		t.Log(out)
	}
}

func withCPU(b *binRun, server float64) *binRun {
	b.ingestCPU.server = server
	return b
}

// TestQueryIngestRate: the queries-during-ingest phase paces each binary's
// ingest at half its own closed-loop rate, or, with -query-ingest-rate,
// every binary at that rate; the targets table says which.
func TestQueryIngestRate(t *testing.T) {
	own := options{}
	if got := own.queryPace(8000); got != 4000 {
		t.Errorf("half of 8,000/s: %v", got)
	}
	fixed := options{queryIngestRate: 2500}
	for _, rate := range []float64{4000, 8000} {
		if got := fixed.queryPace(rate); got != 2500 {
			t.Errorf("-query-ingest-rate 2500, own rate %v: paced at %v", rate, got)
		}
	}
	for _, c := range []struct {
		o    options
		want string
	}{{own, "at half the binary's own rate"}, {fixed, "paced at 2,500 deliveries/s for every binary"}} {
		r := &report{opts: c.o, bins: []receiptdBin{{name: "new", path: "/new"}},
			rounds: []*round{{ref: fakeStats(40_000, time.Millisecond), runs: []*binRun{fakeRun(8_000, 50_000)}}}}
		rows := r.queryRows()
		if len(rows) == 0 || !strings.Contains(rows[0].measure, c.want) {
			t.Errorf("row 4 with %+v: %+v, want it to say %q", c.o.queryIngestRate, rows, c.want)
		}
	}
}
