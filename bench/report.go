package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue 13 ("Speed at any size"). They are printed, never
// enforced.
const (
	targetIngestShare  = 0.50 // of the reference handler, at 64 connections
	targetIngestP99    = 25 * time.Millisecond
	targetRebuildRate  = 150_000 // events/s
	targetGrowReceipts = 1_000_000
	targetGrowRebuild  = 60 * time.Second
	// targetGrowFlat reads "rate flat from 61k to 6.1M events" as: the
	// largest -grow size rebuilds at ≥ 80% of the smallest's rate.
	targetGrowFlat    = 0.80
	targetQueryRate   = 20_000 // req/s, during half-rate ingest
	targetQueryP99    = 5 * time.Millisecond
	targetRSS         = 512 << 20
	targetAnon        = 256 << 20
	targetIngestGain  = 2.5 // new/old, same run
	targetRebuildGain = 10
)

type report struct {
	opts    options
	started time.Time
	sizes   sizeSummary
	bins    []receiptdBin // the old binary first, if any
	rounds  []*round
	grow    []growResult
}

type ablationResult struct {
	kind  string
	stats *stats
	cpu   cpuUse
}

func (r *report) baseline() bool { return len(r.bins) == 2 }

// heading is the column title of binary i.
func (r *report) heading(i int) string {
	switch {
	case r.baseline():
		return r.bins[i].name
	case r.targetMode():
		return "receiptd at -target"
	}
	return "receiptd"
}

// targetMode: the bench drove a receiptd it did not start (-target).
func (r *report) targetMode() bool { return r.bins[0].name == "target" }

func (r *report) print(w io.Writer) {
	r.printHeader(w)
	r.printTargets(w)
	r.printRounds(w)
	r.printSlow(w)
	r.printAblation(w)
	r.printGrow(w)
	fmt.Fprintln(w)
}

func (r *report) printHeader(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\n## receiptd bench — %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s\n", machine())
	fmt.Fprintf(w, "- command: `go run ./bench %s`\n", strings.Join(os.Args[1:], " "))
	for _, b := range r.bins {
		fmt.Fprintf(w, "- %s: `%s` (%s)", b.name, b.path, b.desc)
		if b.extra != "" {
			fmt.Fprintf(w, "; config extra: `%s`", strings.ReplaceAll(strings.TrimSpace(b.extra), "\n", "; "))
		}
		fmt.Fprintln(w)
	}
	if r.baseline() {
		rounds := fmt.Sprintf("%d rounds, each", o.rounds)
		if o.rounds == 1 {
			rounds = "1 round"
		}
		fmt.Fprintf(w, "- %s: the reference handler, then old, then new, every binary on fresh data dirs with the same deliveries in the same order; the tables quote the median of the rounds per binary, \"new / old\" is the ratio of the medians, the verdict is the new binary's\n", rounds)
	} else if o.rounds > 1 {
		fmt.Fprintf(w, "- %d rounds, each: the reference handler, then receiptd on fresh data dirs; the tables quote the median of the rounds\n", o.rounds)
	}
	fmt.Fprintf(w, "- load: %d keep-alive connections, closed loop; %v measured after %v warm-up per phase; generator, server and reference on the same %d cores over loopback\n",
		o.conns, o.duration, o.warmup, cores())
	fmt.Fprintf(w, "- deliveries: Reewild seed shapes, %s receipts × 6 events + %s users, shuffled, %.0f%% exact re-deliveries; body %.0f B mean (min %d, max %d; %.0f%% within 1–3 KB; rewards.awarded %.0f B, receipt.extracted %.0f B, receipt.validated %.0f B)\n",
		thousands(float64(o.receipts)), thousands(float64(o.users)), o.dup*100, r.sizes.mean, r.sizes.min, r.sizes.max, 100*r.sizes.share1to3KB,
		r.sizes.perEventType["rewards.awarded"], r.sizes.perEventType["receipt.extracted"], r.sizes.perEventType["receipt.validated"])
	fmt.Fprintln(w)
}

// A metric is one figure of a binary's run in a round; NaN when the run
// does not have it.
type metric func(rd *round, b *binRun) float64

func rateOf(s *stats) float64 {
	if s == nil || s.window <= 0 {
		return nan
	}
	return s.rate()
}

func p99Of(s *stats) float64 {
	if s == nil || len(s.lat) == 0 {
		return nan
	}
	return float64(s.pct(99))
}

func positive(v float64) float64 {
	if v > 0 {
		return v
	}
	return nan
}

func rebuildRate(pick func(*rebuildSet) rebuildResult) metric {
	return func(_ *round, b *binRun) float64 {
		if b.rb == nil || pick(b.rb).total <= 0 {
			return nan
		}
		return pick(b.rb).rate()
	}
}

var (
	mIngestRate  metric = func(_ *round, b *binRun) float64 { return rateOf(b.ingest) }
	mIngestShare metric = func(rd *round, b *binRun) float64 { return ratio(rateOf(b.ingest), rateOf(rd.ref)) }
	mIngestP99   metric = func(_ *round, b *binRun) float64 { return p99Of(b.ingest) }
	mQueryRate   metric = func(_ *round, b *binRun) float64 { return rateOf(b.query) }
	mQueryP99    metric = func(_ *round, b *binRun) float64 { return p99Of(b.query) }
	mOffline            = rebuildRate(func(s *rebuildSet) rebuildResult { return s.offline })
	mCatchUpCold        = rebuildRate(func(s *rebuildSet) rebuildResult { return s.cold })
	mCatchUpWarm        = rebuildRate(func(s *rebuildSet) rebuildResult { return s.warm })
	mLogPerEvent metric = func(_ *round, b *binRun) float64 {
		if b.rb == nil {
			return nan
		}
		return ratio(float64(b.rb.files.log), positive(b.rb.events))
	}
	mRebuildEvents metric = func(_ *round, b *binRun) float64 {
		if b.rb == nil {
			return nan
		}
		return positive(b.rb.events)
	}
	mRSS  metric = func(_ *round, b *binRun) float64 { return positive(b.mem.rss) }
	mAnon metric = func(_ *round, b *binRun) float64 {
		if b.mem.rss == 0 {
			return nan
		}
		return b.mem.anon
	}
	mRSSDeliveries metric = func(_ *round, b *binRun) float64 { return positive(float64(b.rssDeliveries)) }
)

// medians returns, per binary, the median of f over the rounds that have
// it (NaN if none does).
func (r *report) medians(f metric) []float64 {
	out := make([]float64, len(r.bins))
	for i := range r.bins {
		var vs []float64
		for _, rd := range r.rounds {
			if i < len(rd.runs) && rd.runs[i] != nil {
				if v := f(rd, rd.runs[i]); !math.IsNaN(v) {
					vs = append(vs, v)
				}
			}
		}
		out[i] = median(vs)
	}
	return out
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return nan
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// newest is the last binary's median of f: the figure labels quote it.
func (r *report) newest(f metric) float64 {
	v := r.medians(f)
	return v[len(v)-1]
}

// row is a line of the targets table: a figure per binary, their new/old
// ratio (with a baseline), the target and the new binary's verdict.
type row struct {
	id, measure     string
	cells           []string
	ratio           string
	target, verdict string
}

// figure builds the row of a metric's medians.
func (r *report) figure(id, measure string, f metric, format func(float64) string, target string, met func(float64) bool) row {
	v := r.medians(f)
	rw := row{id: id, measure: measure, target: target}
	for _, x := range v {
		rw.cells = append(rw.cells, format(x))
	}
	if r.baseline() {
		rw.ratio = gain(ratio(v[1], v[0]))
	}
	if met != nil {
		rw.verdict = judge(v[len(v)-1], met)
	}
	return rw
}

func (r *report) printTargets(w io.Writer) {
	fmt.Fprintf(w, "### Issue 13's targets\n\n")
	head := "| # | measure |"
	rule := "|---|---|"
	for i := range r.bins {
		head += " " + r.heading(i) + " |"
		rule += "---:|"
	}
	if r.baseline() {
		head += " new / old |"
		rule += "---:|"
	}
	fmt.Fprintln(w, head+" target | verdict |")
	fmt.Fprintln(w, rule+"---|---|")
	for _, rw := range r.targetRows() {
		line := fmt.Sprintf("| %s | %s |", rw.id, rw.measure)
		for i := range r.bins {
			c := ""
			if i < len(rw.cells) {
				c = rw.cells[i]
			}
			line += " " + c + " |"
		}
		if r.baseline() {
			line += " " + rw.ratio + " |"
		}
		fmt.Fprintf(w, "%s %s | %s |\n", line, rw.target, rw.verdict)
	}
	if r.baseline() {
		fmt.Fprintln(w, "\n\"new / old\" is the ratio of the figures in the row (for a latency, a time or a size, below 1 is better).")
	}
}

// targetRows are issue 13's measures in its order, each with its target.
func (r *report) targetRows() []row {
	if r.targetMode() { // no reference, no rebuild, no process to read
		in := r.ingestRows()
		return append([]row{in[0], in[2]}, r.queryRows()...)
	}
	var rows []row
	for _, part := range [][]row{r.ingestRows(), r.rebuildRows(), r.growRows(), r.queryRows(), r.diskAndMemoryRows(), r.growMemoryRow(), r.gainRows()} {
		rows = append(rows, part...)
	}
	return rows
}

func (r *report) ingestRows() []row {
	o := r.opts
	return []row{
		r.figure("1", fmt.Sprintf("durable verified ingest, deliveries/s (%d conns, whole receipts out of order, %.0f%% re-deliveries)", o.conns, o.dup*100),
			mIngestRate, perSecond, "", nil),
		r.figure("1", fmt.Sprintf("… / bare net/http handler of the same round (reference: %s)", perSecond(r.refRate())),
			mIngestShare, percent, "≥ 50%", func(v float64) bool { return v >= targetIngestShare }),
		r.figure("1", "ingest p99", mIngestP99, msOf, "< 25 ms", func(v float64) bool { return v < float64(targetIngestP99) }),
	}
}

func (r *report) rebuildRows() []row {
	fast := func(v float64) bool { return v >= targetRebuildRate }
	return []row{
		r.figure("2", fmt.Sprintf("offline rebuild, `receiptd rebuild` of a %s-event log as a whole process, page cache warm: events/s", thousands(r.newest(mRebuildEvents))),
			mOffline, perSecond, "≥ 150,000/s", fast),
		r.figure("2", "catch-up of empty read models at server start, same log, "+r.coldNote()+": events/s", mCatchUpCold, perSecond, "≥ 150,000/s", fast),
		r.figure("2", "catch-up again, log in the page cache: events/s", mCatchUpWarm, perSecond, "≥ 150,000/s", fast),
	}
}

func (r *report) queryRows() []row {
	return []row{
		r.figure("4", "gRPC GetReceipt/GetBalance during ingest "+r.opts.queryPaceNote()+": req/s",
			mQueryRate, perSecond, "≥ 20,000/s", func(v float64) bool { return v >= targetQueryRate }),
		r.figure("4", "query p99", mQueryP99, msOf, "< 5 ms", func(v float64) bool { return v < float64(targetQueryP99) }),
	}
}

func (r *report) diskAndMemoryRows() []row {
	body := r.sizes.mean
	return []row{
		r.figure("5", fmt.Sprintf("log size per event: log bytes / events in the log (the rebuild's log; mean delivered body %.0f B)", body),
			mLogPerEvent, bytesOf, fmt.Sprintf("≤ %.0f B", body), func(v float64) bool { return v <= body }),
		r.figure("6", fmt.Sprintf("resident memory (VmRSS) after %s deliveries", thousands(r.newest(mRSSDeliveries))),
			mRSS, mib, "< 512 MiB", func(v float64) bool { return v < targetRSS }),
		r.figure("6", "… of which anonymous (RssAnon)", mAnon, mib, "< 256 MiB", func(v float64) bool { return v < targetAnon }),
	}
}

// refRate is the median rate of the reference handler over the rounds.
func (r *report) refRate() float64 {
	var vs []float64
	for _, rd := range r.rounds {
		if v := rateOf(rd.ref); !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	return median(vs)
}

// coldNote says whether the cold rebuilds had the page cache dropped.
func (r *report) coldNote() string {
	for _, rd := range r.rounds {
		for _, b := range rd.runs {
			if b != nil && b.rb != nil && b.rb.cold.total > 0 && !b.rb.cold.cold {
				return "page cache NOT dropped (not root)"
			}
		}
	}
	return "page cache dropped"
}

// gainRows are the "at least 2.5× ingest and 10× rebuild" of issue 13.
func (r *report) gainRows() []row {
	ingest := row{id: "×", measure: "ingest, deliveries/s: new / old, same run", target: "≥ ×2.5"}
	rebuild := row{id: "×", measure: "offline rebuild, events/s: new / old, same run", target: "≥ ×10"}
	if !r.baseline() {
		ingest.verdict, rebuild.verdict = "needs -baseline", "needs -baseline"
		return []row{ingest, rebuild}
	}
	for _, x := range []struct {
		rw   *row
		f    metric
		goal float64
	}{{&ingest, mIngestRate, targetIngestGain}, {&rebuild, mOffline, targetRebuildGain}} {
		v := r.medians(x.f)
		g := ratio(v[1], v[0])
		x.rw.ratio = gain(g)
		x.rw.verdict = judge(g, func(g float64) bool { return g >= x.goal })
	}
	return []row{ingest, rebuild}
}

// growSize is the -grow size issue 13's rows quote: 1,000,000 receipts if
// the new binary was grown to it, else the largest it was grown to (0:
// none).
func (r *report) growSize() int {
	size := 0
	for _, g := range r.grow {
		if g.bin != r.bins[len(r.bins)-1].name || g.catchUp.total <= 0 {
			continue
		}
		if g.receipts == targetGrowReceipts {
			return g.receipts
		}
		size = max(size, g.receipts)
	}
	return size
}

// growOf returns binary name's complete grow run of size receipts.
func (r *report) growOf(name string, size int) (growResult, bool) {
	for _, g := range r.grow {
		if g.bin == name && g.receipts == size && g.catchUp.total > 0 {
			return g, true
		}
	}
	return growResult{}, false
}

// growRows are issue 13's "rebuild at 1M receipts, cold" and "rate flat",
// from the -grow runs (not per round: each size is grown once per binary).
func (r *report) growRows() []row {
	size := r.growSize()
	if size == 0 {
		return []row{{id: "3", measure: "rebuild at 1,000,000 receipts (6.1M events), cold", cells: r.fill(dash),
			target: "< 60 s", verdict: "run with -grow 10000,100000,1000000"}}
	}
	target := "< 60 s"
	if size != targetGrowReceipts {
		target = "< 60 s at 1,000,000 receipts"
	}
	g, _ := r.growOf(r.bins[len(r.bins)-1].name, size)
	label := fmt.Sprintf("rebuild at %s receipts (%s events), %s, ", thousands(float64(size)), thousands(g.events), coldNoteOf(g.catchUp))
	var rows []row
	for _, k := range []struct {
		what string
		res  func(growResult) rebuildResult
	}{
		{"catch-up of empty read models at server start", func(g growResult) rebuildResult { return g.catchUp }},
		{"offline `receiptd rebuild`", func(g growResult) rebuildResult { return g.offline }},
	} {
		rw := row{id: "3", measure: label + k.what + ": time (events/s)", target: target}
		secs := make([]float64, len(r.bins))
		for i, b := range r.bins {
			gb, ok := r.growOf(b.name, size)
			if !ok {
				rw.cells, secs[i] = append(rw.cells, "not from this run (-grow-baseline)"), nan
				continue
			}
			x := k.res(gb)
			rw.cells, secs[i] = append(rw.cells, fmt.Sprintf("%s (%s)", took(x.total), perSecond(x.rate()))), x.total.Seconds()
		}
		if r.baseline() {
			rw.ratio = gain(ratio(secs[1], secs[0]))
		}
		if size == targetGrowReceipts {
			rw.verdict = judge(secs[len(secs)-1], func(s float64) bool { return s < targetGrowRebuild.Seconds() })
		}
		rows = append(rows, rw)
	}
	return append(rows, r.flatRow())
}

// flatRow compares the catch-up rate at the largest and at the smallest
// -grow size, per binary.
func (r *report) flatRow() row {
	rw := row{id: "3", measure: "catch-up rate at the largest -grow size / at the smallest", target: fmt.Sprintf("flat (≥ %.0f%%)", 100*targetGrowFlat)}
	flat := nan
	for _, b := range r.bins {
		var small, large growResult
		for _, g := range r.grow {
			if g.bin != b.name || g.catchUp.total <= 0 {
				continue
			}
			if small.receipts == 0 || g.receipts < small.receipts {
				small = g
			}
			if g.receipts > large.receipts {
				large = g
			}
		}
		flat = nan
		if small.receipts == large.receipts {
			rw.cells = append(rw.cells, dash)
			continue
		}
		flat = ratio(large.catchUp.rate(), small.catchUp.rate())
		rw.cells = append(rw.cells, fmt.Sprintf("%s (%s → %s events)", percent(flat), thousands(small.events), thousands(large.events)))
	}
	rw.verdict = judge(flat, func(v float64) bool { return v >= targetGrowFlat }) // the new binary's, the last
	return rw
}

// growMemoryRow is the resident memory after the -grow fill of issue
// 13's size.
func (r *report) growMemoryRow() []row {
	size := r.growSize()
	if size == 0 {
		return nil
	}
	rw := row{id: "6", measure: fmt.Sprintf("resident memory after the -grow fill of %s receipts: VmRSS / RssAnon", thousands(float64(size))),
		target: "< 512 MiB / < 256 MiB"}
	for _, b := range r.bins {
		g, ok := r.growOf(b.name, size)
		if !ok {
			rw.cells = append(rw.cells, "not from this run")
			continue
		}
		rw.cells = append(rw.cells, mib(g.mem.rss)+" / "+mib(g.mem.anon))
		rw.verdict = judge(g.mem.rss, func(float64) bool { return g.mem.rss < targetRSS && g.mem.anon < targetAnon })
	}
	return []row{rw}
}

func (r *report) fill(s string) []string {
	out := make([]string, len(r.bins))
	for i := range out {
		out[i] = s
	}
	return out
}

func coldNoteOf(x rebuildResult) string {
	if x.cold {
		return "page cache dropped"
	}
	return "page cache NOT dropped (not root)"
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
