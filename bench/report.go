package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Targets of the "Fast and unbreakable" issue. They are printed, never
// enforced.
const (
	targetIngestRatio  = 0.50 // of the reference handler, at 64 connections
	targetIngestP99    = 25 * time.Millisecond
	targetRebuildRate  = 150_000 // events/s
	targetQueryRate    = 20_000  // req/s, during half-load ingest
	targetQueryP99     = 5 * time.Millisecond
	targetRSS          = 300 << 20
	targetRSSDelivered = 1_000_000
)

type report struct {
	opts    options
	started time.Time
	sizes   sizeSummary

	ablation []ablationResult

	ref, ingest       *stats
	refCPU, ingestCPU cpuUse

	query, halfIngest *stats
	queryCPU          cpuUse
	queryAlone        *stats
	queryAloneCPU     cpuUse

	rssFill       *stats
	rssDeliveries int
	rss, rssPeak  float64
	mem           memStatus
	heap          float64
	rssEvents     float64
	rebuild       rebuildResult
	rebuildWarm   rebuildResult
	logBytes      int64
	viewBytes     int64
	grow          []growResult
}

type ablationResult struct {
	kind  string
	stats *stats
	cpu   cpuUse
}

type sizeSummary struct {
	mean          float64
	min, max      int
	share1to3KB   float64
	perEventType  map[string]float64
	sampledBodies int
}

// sizeStats measures the bodies of n deliveries spread over the universe.
func sizeStats(u universe, n int) sizeSummary {
	s := sizeSummary{min: 1 << 30, perEventType: map[string]float64{}}
	counts := map[string]int{}
	total, inRange := 0, 0
	var buf []byte
	for i := range n {
		k := int(mix(u.seed, uint64(i)|1<<57) % uint64(u.size()))
		buf = u.delivery(buf[:0], k)
		l := len(buf)
		total += l
		s.min, s.max = min(s.min, l), max(s.max, l)
		if l >= 1000 && l <= 3000 {
			inRange++
		}
		typ := eventTypeOf(buf)
		s.perEventType[typ] += float64(l)
		counts[typ]++
		s.sampledBodies++
	}
	s.mean = float64(total) / float64(s.sampledBodies)
	s.share1to3KB = float64(inRange) / float64(s.sampledBodies)
	for t, c := range counts {
		s.perEventType[t] /= float64(c)
	}
	return s
}

func eventTypeOf(body []byte) string {
	const p = `{"eventType":"`
	rest := strings.TrimPrefix(string(body[:min(len(body), 64)]), p)
	t, _, _ := strings.Cut(rest, `"`)
	return t
}

func (c cpuUse) String() string {
	if c.machine == 0 {
		return fmt.Sprintf("%.2f + %.2f", c.server, c.generator)
	}
	return fmt.Sprintf("%.2f + %.2f (%.2f of %d)", c.server, c.generator, c.machine, cores())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*a/b)
}

func times(a, b time.Duration) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("×%.1f", float64(a)/float64(b))
}

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\n## receiptd bench — %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s\n", machine())
	fmt.Fprintf(w, "- command: `go run ./bench %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "- load: %d keep-alive connections, closed loop; %v measured after %v warm-up per phase; generator, server and reference on the same %d cores over loopback\n",
		o.conns, o.duration, o.warmup, cores())
	fmt.Fprintf(w, "- deliveries: Reewild seed shapes, %s receipts × 6 events + %s users, shuffled, %.0f%% exact re-deliveries; body %.0f B mean (min %d, max %d; %.0f%% within 1–3 KB; rewards.awarded %.0f B, receipt.extracted %.0f B, receipt.validated %.0f B)\n",
		thousands(float64(o.receipts)), thousands(float64(o.users)), o.dup*100, r.sizes.mean, r.sizes.min, r.sizes.max, 100*r.sizes.share1to3KB,
		r.sizes.perEventType["rewards.awarded"], r.sizes.perEventType["receipt.extracted"], r.sizes.perEventType["receipt.validated"])
	fmt.Fprintln(w)

	fmt.Fprintln(w, "| measure | receiptd | reference handler | receiptd / reference | target | |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	in, ref := r.ingest, r.ref
	ingestVerdict := verdict(in.rate() >= targetIngestRatio*ref.rate())
	if ref.ok == 0 {
		ingestVerdict = "no reference run"
	}
	fmt.Fprintf(w, "| ingest, deliveries/s (%d conns) | %s | %s | %s | ≥ 50%% of reference | %s |\n", o.conns,
		thousands(in.rate()), thousands(ref.rate()), ratio(in.rate(), ref.rate()), ingestVerdict)
	fmt.Fprintf(w, "| ingest p50 | %s | %s | %s | | |\n", ms(in.pct(50)), ms(ref.pct(50)), times(in.pct(50), ref.pct(50)))
	fmt.Fprintf(w, "| ingest p99 | %s | %s | %s | < 25 ms | %s |\n", ms(in.pct(99)), ms(ref.pct(99)), times(in.pct(99), ref.pct(99)), verdict(in.pct(99) < targetIngestP99))
	fmt.Fprintf(w, "| ingest p99.9 | %s | %s | %s | | |\n", ms(in.pct(99.9)), ms(ref.pct(99.9)), times(in.pct(99.9), ref.pct(99.9)))
	fmt.Fprintf(w, "| ingest errors (non-200) | %s | %s | | 0 | %s |\n", in.errorSummary(), ref.errorSummary(), verdict(in.errs == 0))
	fmt.Fprintf(w, "| CPU, cores: server + generator (machine busy) | %s | %s | | | |\n", r.ingestCPU, r.refCPU)
	if rb := r.rebuild; rb.events > 0 {
		cache := "page cache dropped"
		if !rb.cold {
			cache = "page cache NOT dropped (not root)"
		}
		fmt.Fprintf(w, "| rebuild, events/s (%s events, %s) | %s | | | ≥ 150,000 | %s |\n", thousands(rb.events), cache, thousands(rb.rate()), verdict(rb.rate() >= targetRebuildRate))
		if wb := r.rebuildWarm; wb.events > 0 {
			fmt.Fprintf(w, "| rebuild, events/s (same log, in the page cache) | %s | | | ≥ 150,000 | %s |\n", thousands(wb.rate()), verdict(wb.rate() >= targetRebuildRate))
		}
	}
	if q := r.query; q != nil {
		fmt.Fprintf(w, "| gRPC GetReceipt/GetBalance, req/s during ingest at %s/s | %s | | | ≥ 20,000 | %s |\n",
			thousands(r.halfIngest.rate()), thousands(q.rate()), verdict(q.rate() >= targetQueryRate))
		fmt.Fprintf(w, "| query p50 / p99 / p99.9 | %s / %s / %s | | | p99 < 5 ms | %s |\n", ms(q.pct(50)), ms(q.pct(99)), ms(q.pct(99.9)), verdict(q.pct(99) < targetQueryP99))
		fmt.Fprintf(w, "| query errors | %s | | | 0 | %s |\n", q.errorSummary(), verdict(q.errs == 0))
		fmt.Fprintf(w, "| half-load ingest meanwhile: deliveries/s, p99, errors | %s, %s, %s | | | | |\n",
			thousands(r.halfIngest.rate()), ms(r.halfIngest.pct(99)), r.halfIngest.errorSummary())
		if qa := r.queryAlone; qa != nil {
			fmt.Fprintf(w, "| (for comparison) queries alone, no ingest: req/s, p50 / p99 / p99.9, CPU | %s, %s / %s / %s, %s | | | | |\n",
				thousands(qa.rate()), ms(qa.pct(50)), ms(qa.pct(99)), ms(qa.pct(99.9)), r.queryAloneCPU)
		}
		if r.queryCPU.machine > 0 {
			fmt.Fprintf(w, "| CPU during queries + half-load ingest, cores: server + generator (machine busy) | %s | | | | |\n", r.queryCPU)
		}
	}
	if r.rss > 0 {
		fmt.Fprintf(w, "| RSS after %s deliveries (%s events) | %s (peak %s) | | | < 300 MiB after 1,000,000 | %s |\n",
			thousands(float64(r.rssDeliveries)), thousands(r.rssEvents), mib(r.rss), mib(r.rssPeak),
			verdict(r.rssPeak < targetRSS && r.rssDeliveries >= targetRSSDelivered))
		if r.mem.rss > 0 {
			fmt.Fprintf(w, "| … of which anonymous (Go heap, stacks) / file-backed (bbolt's mmap of events.db, views.db) | %s / %s (Go heap in use %s) | | | | |\n",
				mib(r.mem.anon), mib(r.mem.file), mib(r.heap))
		}
	}
	if f := r.rssFill; f != nil {
		fmt.Fprintf(w, "| (RSS fill: %s deliveries at %s/s, p99 %s, errors %s) | | | | | |\n",
			thousands(float64(f.ok+f.errs)), thousands(f.rate()), ms(f.pct(99)), f.errorSummary())
	}
	if r.logBytes > 0 {
		fmt.Fprintf(w, "| files at the end: events.db, views.db | %s, %s | | | | |\n", mib(float64(r.logBytes)), mib(float64(r.viewBytes)))
	}

	if len(r.ablation) > 0 {
		fmt.Fprint(w, "\n### Where ingest's time goes (same load, same connections)\n\n")
		fmt.Fprintln(w, "| server | deliveries/s | / reference | p50 | p99 | errors | CPU, cores: server + generator (machine busy) |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|")
		row := func(name string, st *stats, cpu cpuUse) {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, thousands(st.rate()), ratio(st.rate(), ref.rate()),
				ms(st.pct(50)), ms(st.pct(99)), st.errorSummary(), cpu)
		}
		row("reference: bare net/http, reads the body, answers 200", ref, r.refCPU)
		for _, a := range r.ablation {
			switch a.kind {
			case "mem":
				row("webhook handler, in-memory store (verify, decode, decide; no disk)", a.stats, a.cpu)
			case "bolt":
				row("webhook handler, embedded store (+ durable group-committed append)", a.stats, a.cpu)
			}
		}
		row("receiptd (+ read models kept up to date, metrics, gRPC)", in, r.ingestCPU)
	}

	if len(r.grow) > 0 {
		fmt.Fprint(w, "\n### How it grows\n\n")
		fmt.Fprintln(w, "| receipts | deliveries sent (re-deliveries) | events in the log | ingest, deliveries/s | ingest p99 | errors | rebuild time (cold cache) | rebuild, events/s | events.db | RSS after (anon / file) |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, g := range r.grow {
			fmt.Fprintf(w, "| %s | %s (%s) | %s | %s | %s | %d | %s | %s | %s | %s (%s / %s) |\n",
				thousands(float64(g.receipts)), thousands(float64(g.fill.sent)), thousands(float64(g.fill.sentDups)), thousands(g.events),
				thousands(g.fill.rate()), ms(g.fill.pct(99)), g.fill.errs, g.rebuild.total.Round(10*time.Millisecond), thousands(g.rebuild.rate()),
				mib(float64(g.logBytes)), mib(g.rss), mib(g.mem.anon), mib(g.mem.file))
		}
	}
	fmt.Fprintln(w)
}

// machine describes this box: CPU model, cores, memory, kernel, Go.
func machine() string {
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%f", &kb)
				mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d cores (%s), %s RAM, Linux %s, %s", cores(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}
