package main

import (
	"fmt"
	"io"
	"strings"
)

// The detail tables: every round's figures (the targets table quotes
// their medians), where ingest's time goes, and how it grows.

// table prints a Markdown table: a header, then rows of cells.
func table(w io.Writer, title string, header []string, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n#### %s\n\n", title)
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

func errorsOf(s *stats) string {
	if s == nil {
		return dash
	}
	return s.errorSummary()
}

// latencies is "p50 / p99 / p99.9".
func latencies(s *stats) string {
	if s == nil || len(s.lat) == 0 {
		return dash
	}
	return fmt.Sprintf("%s / %s / %s", ms(s.pct(50)), ms(s.pct(99)), ms(s.pct(99.9)))
}

// briefly is a load's "deliveries/s, p99, errors".
func briefly(s *stats) string {
	if s == nil {
		return dash
	}
	return fmt.Sprintf("%s, %s, %s", perSecond(rateOf(s)), msOf(p99Of(s)), errorsOf(s))
}

func timed(x rebuildResult) string {
	if x.total <= 0 {
		return dash
	}
	return fmt.Sprintf("%s (%s)", took(x.total), perSecond(x.rate()))
}

// details holds the rows of the per-round tables.
type details struct{ ingest, queries, rebuilds, memory [][]string }

func (r *report) printRounds(w io.Writer) {
	var d details
	for i, rd := range r.rounds {
		if rd.ref != nil {
			d.ingest = append(d.ingest, []string{fmt.Sprint(i + 1), "reference", perSecond(rateOf(rd.ref)), "100%", latencies(rd.ref), errorsOf(rd.ref), rd.refCPU.String()})
		}
		for j, b := range rd.runs {
			if b != nil {
				d.add(fmt.Sprint(i+1), r.heading(j), rd, b)
			}
		}
	}
	table(w, "Each round: ingest (closed loop)", []string{"round", "server", "deliveries/s", "/ reference", "p50 / p99 / p99.9", "errors (non-200)",
		"CPU, cores: server + generator (machine busy)"}, d.ingest)
	table(w, "Each round: gRPC queries", []string{"round", "binary", "req/s during half-rate ingest", "p50 / p99 / p99.9", "errors",
		"half-rate ingest meanwhile: deliveries/s, p99, errors", "CPU meanwhile", "queries alone: req/s, p50 / p99 / p99.9", "CPU alone"}, d.queries)
	table(w, fmt.Sprintf("Each round: rebuilds (a fresh log of the first %s deliveries)", thousands(float64(r.opts.rebuildDeliveries))),
		[]string{"round", "binary", "fill: deliveries/s, p99, errors", "events", "log, read models", "log per event",
			"offline `receiptd rebuild`, warm: time (events/s)", "… its CPU, peak RSS", "catch-up at start, " + r.coldNote() + ": time (events/s)", "catch-up, warm"}, d.rebuilds)
	table(w, "Each round: memory (as ps sees it, /proc/PID/status)", []string{"round", "binary", "deliveries received (events)", "VmRSS", "RssAnon", "RssFile",
		"VmHWM (peak)", "Go heap in use", "fill to it: deliveries/s, p99, errors", "data dir then: log, read models"}, d.memory)
}

// add appends the rows of binary run b in round n.
func (d *details) add(n, name string, rd *round, b *binRun) {
	if b.ingest != nil {
		d.ingest = append(d.ingest, []string{n, name, perSecond(rateOf(b.ingest)), percent(mIngestShare(rd, b)), latencies(b.ingest), errorsOf(b.ingest), b.ingestCPU.String()})
	}
	if b.query != nil {
		d.queries = append(d.queries, []string{n, name, perSecond(rateOf(b.query)), latencies(b.query), errorsOf(b.query),
			briefly(b.halfIngest), b.queryCPU.String(), perSecond(rateOf(b.queryAlone)) + ", " + latencies(b.queryAlone), b.queryAloneCPU.String()})
	}
	if s := b.rb; s != nil {
		d.rebuilds = append(d.rebuilds, []string{n, name, briefly(s.fill), thousands(s.events),
			mib(float64(s.files.log)) + ", " + mib(float64(s.files.models)), bytesOf(mLogPerEvent(rd, b)),
			timed(s.offline), fmt.Sprintf("%.1f s, %s", s.offline.cpu, mib(s.offline.maxRSS)), timed(s.cold), timed(s.warm)})
	}
	if b.mem.rss > 0 {
		d.memory = append(d.memory, []string{n, name, fmt.Sprintf("%s (%s)", thousands(float64(b.rssDeliveries)), thousands(b.rssEvents)),
			mib(b.mem.rss), mib(b.mem.anon), mib(b.mem.file), mib(b.mem.peak), mib(b.heap), briefly(b.rssFill),
			mib(float64(b.files.log)) + ", " + mib(float64(b.files.models))})
	}
}

func (r *report) printAblation(w io.Writer) {
	if len(r.rounds) == 0 || len(r.rounds[0].ablation) == 0 {
		return
	}
	rd := r.rounds[0]
	row := func(name string, st *stats, cpu cpuUse) []string {
		return []string{name, perSecond(rateOf(st)), percent(ratio(rateOf(st), rateOf(rd.ref))), msOf(float64(st.pct(50))), msOf(p99Of(st)), errorsOf(st), cpu.String()}
	}
	rows := [][]string{row("reference: bare net/http, reads the body, answers 200", rd.ref, rd.refCPU)}
	for _, a := range rd.ablation {
		switch a.kind {
		case "mem":
			rows = append(rows, row("webhook handler of this tree, in-memory store (verify, decode, decide; no disk)", a.stats, a.cpu))
		case "bolt":
			rows = append(rows, row("webhook handler of this tree, embedded store (+ durable group-committed append)", a.stats, a.cpu))
		}
	}
	for i, b := range rd.runs {
		if b != nil && b.ingest != nil {
			rows = append(rows, row(r.heading(i)+" receiptd (+ read models kept up to date, metrics, gRPC)", b.ingest, b.ingestCPU))
		}
	}
	table(w, "Where ingest's time goes (round 1, same load, same connections)",
		[]string{"server", "deliveries/s", "/ reference", "p50", "p99", "errors", "CPU, cores: server + generator (machine busy)"}, rows)
}

func (r *report) printGrow(w io.Writer) {
	var rows [][]string
	for _, g := range r.grow {
		if g.fill == nil {
			continue
		}
		rows = append(rows, []string{thousands(float64(g.receipts)), g.bin,
			fmt.Sprintf("%s (%s)", thousands(float64(g.fill.sent)), thousands(float64(g.fill.sentDups))), thousands(g.events),
			perSecond(g.fill.rate()), ms(g.fill.pct(99)), fmt.Sprint(g.fill.errs),
			timed(g.offline), timed(g.catchUp),
			fmt.Sprintf("%s (%s)", mib(float64(g.files.log)), bytesOf(ratio(float64(g.files.log), g.events))), mib(float64(g.files.models)),
			fmt.Sprintf("%s (%s / %s)", mib(g.mem.rss), mib(g.mem.anon), mib(g.mem.file))})
	}
	title := "How it grows"
	if r.baseline() && !r.opts.growBaseline {
		title += " (new binary only: the old binary's growth figures are not from this run; -grow-baseline grows it too)"
	}
	table(w, title, []string{"receipts", "binary", "deliveries sent (re-deliveries)", "events in the log", "ingest", "ingest p99", "errors",
		"offline rebuild, cold: time (events/s)", "catch-up at start, cold: time (events/s)", "log (per event)", "read models", "VmRSS after (anon / file)"}, rows)
}
