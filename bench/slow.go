package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiptd/receiptd/bench/benchdata"
)

// Slow consumers of the feed (issue 15: "a slow destination or subscriber
// leaves ingest's rate within 10%"). With -slow-destination D, each round
// also runs the new binary's ingest phase (closed loop, a fresh data dir,
// the same deliveries in the same order) with a feed destination that
// takes D to answer each request (a receiver in this process) and
// -slow-subscribers subscribers of GET /v1/feed that read one event per
// D; the report sets its rate beside the same round's ingest without them.
// Odd rounds run without first, even rounds with first.

// slowSecret signs the bench's pushes (Standard Webhooks: whsec_ and base64).
var slowSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("the bench's slow destination"))

// slowDestination is a feed destination that answers 204 to every request
// after a delay.
type slowDestination struct {
	url      string
	delay    time.Duration
	srv      *http.Server
	requests atomic.Int64
}

func startSlowDestination(delay time.Duration) (*slowDestination, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &slowDestination{url: "http://" + ln.Addr().String() + "/hooks", delay: delay}
	d.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		d.requests.Add(1)
		t := time.NewTimer(d.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

func (d *slowDestination) close() { _ = d.srv.Close() }

// config is the destinations section naming d.
func (d *slowDestination) config() string {
	timeout := max(10*time.Second, 3*d.delay)
	return fmt.Sprintf("destinations:\n  - {name: slow, url: %q, secret: %q, timeout: %s}\n", d.url, slowSecret, timeout)
}

// slowRun is the new binary's ingest with slow consumers, in one round.
type slowRun struct {
	ingest      *stats
	cpu         cpuUse
	requests    int64   // the destination's requests during the run
	subEvents   int64   // events the slow subscribers read
	subscribers float64 // receiptd_feed_subscribers at the end
	lag         float64 // the destination's lag in positions at the end
	head        float64 // the read models' checkpoint at the end
}

// measureSlow runs b's ingest phase with the slow destination and
// subscribers attached.
func measureSlow(ctx context.Context, b receiptdBin, dest *slowDestination, tmp string, o options, u benchdata.Universe, n int) (*slowRun, error) {
	run := &slowRun{}
	name := fmt.Sprintf("%s-slow-r%d", b.name, n)
	dir := filepath.Join(tmp, name)
	defer os.RemoveAll(dir)
	b.extra += dest.config()
	srv, err := startReceiptd(b, dir, false)
	if err != nil {
		return run, err
	}
	defer srv.kill()
	sctx, stopSubs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var subEvents atomic.Int64
	for range o.slowSubscribers {
		wg.Go(func() { slowSubscriber(sctx, "http://"+srv.httpAddr+"/v1/feed", dest.delay, &subEvents) })
	}
	defer func() { stopSubs(); wg.Wait() }()
	before := dest.requests.Load()
	logf("%s: ingest with a destination answering in %v and %d subscribers reading an event per %v, %d connections, %v",
		name, dest.delay, o.slowSubscribers, dest.delay, o.conns, o.duration)
	m := startMeter(srv)
	run.ingest = ingestLoad{url: "http://" + srv.httpAddr + "/webhooks/reewild", seq: newSequence(u, o.dup, o.seed), sign: newSigner([]byte(benchSecret)),
		conns: o.conns, warmup: o.warmup, measure: o.duration}.run(ctx)
	run.cpu = m.stop()
	run.requests = dest.requests.Load() - before
	run.subEvents = subEvents.Load()
	lagName := `receiptd_feed_destination_lag_positions{destination="slow"}`
	mt, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", lagName, "receiptd_feed_subscribers", "receiptd_projection_checkpoint")
	if err != nil {
		return run, err
	}
	run.lag, run.subscribers, run.head = mt[lagName], mt["receiptd_feed_subscribers"], mt["receiptd_projection_checkpoint"]
	if run.ingest.ok == 0 {
		return run, fmt.Errorf("receiptd acknowledged nothing: %s\n%s", run.ingest.errorSummary(), srv.logTail())
	}
	if run.requests == 0 || (o.slowSubscribers > 0 && run.subEvents == 0) {
		logf("%s: WARNING: the destination got %d requests and the subscribers %d events: is the feed derived?", name, run.requests, run.subEvents)
	}
	return run, nil
}

// slowSubscriber reads GET /v1/feed (Server-Sent Events) one event per
// delay until ctx ends, reconnecting with Last-Event-ID if dropped.
func slowSubscriber(ctx context.Context, url string, delay time.Duration, events *atomic.Int64) {
	last := ""
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			logf("slow subscriber: GET /v1/feed: %s", resp.Status)
			sleepCtx(ctx, time.Second)
			continue
		}
		r := bufio.NewReaderSize(resp.Body, 512) // small: the server's writes wait on this reader
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			line = strings.TrimRight(line, "\n")
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				last = id
			}
			if line == "" {
				events.Add(1)
				if !sleepCtx(ctx, delay) {
					break
				}
			}
		}
		resp.Body.Close()
	}
}

// sleepCtx sleeps for d unless ctx ends first (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runSlow runs the slow consumers' measure of round n beside its runs.
func runSlow(ctx context.Context, o options, bins []receiptdBin, dest *slowDestination, u benchdata.Universe, tmp string, n int, rd *round) error {
	if dest == nil {
		return nil
	}
	s, err := measureSlow(ctx, bins[len(bins)-1], dest, tmp, o, u, n)
	rd.slow = s
	if err != nil {
		return fmt.Errorf("round %d, slow consumers: %w", n, err)
	}
	return nil
}

// printSlow prints the slow consumers' table: per round, the new
// binary's ingest without and with them, their ratio, and the server's
// CPU per delivery each time (a figure that another process's load on the
// machine hardly moves, unlike the rate); then the ratios of the medians.
// The verdict: with them, ingest keeps at least 90% of its rate.
func (r *report) printSlow(w io.Writer) {
	o := r.opts
	if o.slowDestination <= 0 {
		return
	}
	last := len(r.bins) - 1
	var rows [][]string
	var without, with, cpuWithout, cpuWith []float64
	for i, rd := range r.rounds {
		if rd.slow == nil || last >= len(rd.runs) || rd.runs[last] == nil {
			continue
		}
		b, s := rd.runs[last], rd.slow
		a, c := rateOf(b.ingest), rateOf(s.ingest)
		ca, cc := cpuPerDelivery(b.ingestCPU, a), cpuPerDelivery(s.cpu, c)
		without, with, cpuWithout, cpuWith = append(without, a), append(with, c), append(cpuWithout, ca), append(cpuWith, cc)
		rows = append(rows, []string{fmt.Sprint(i + 1), perSecond(a) + ", " + latencies(b.ingest), perSecond(c) + ", " + latencies(s.ingest),
			percent(ratio(c, a)), usOf(ca) + " / " + usOf(cc) + " (" + percent(ratio(cc, ca)) + ")", errorsOf(s.ingest), s.cpu.String(),
			fmt.Sprintf("%d requests, %s positions behind at the end (head %s)", s.requests, thousands(s.lag), thousands(s.head)),
			fmt.Sprintf("%d events read by %.0f", s.subEvents, s.subscribers)})
	}
	if len(rows) == 0 {
		return
	}
	m := ratio(median(with), median(without))
	verdict := judge(m, func(v float64) bool { return v >= 0.90 })
	mc := ratio(median(cpuWith), median(cpuWithout))
	rows = append(rows, []string{"median", perSecond(median(without)), perSecond(median(with)), percent(m) + " (" + verdict + ": ≥ 90%)",
		usOf(median(cpuWithout)) + " / " + usOf(median(cpuWith)) + " (" + percent(mc) + ")", "", "", "", ""})
	table(w, fmt.Sprintf("Slow feed consumers (issue 15): ingest of the %s binary without, and with a destination answering in %v and %d SSE subscribers reading an event per %v",
		r.heading(last), o.slowDestination, o.slowSubscribers, o.slowDestination),
		[]string{"round", "without: deliveries/s, p50 / p99 / p99.9", "with: deliveries/s, p50 / p99 / p99.9", "with / without",
			"server CPU per delivery, without / with", "errors with", "CPU with", "the destination", "the subscribers"}, rows)
}

// cpuPerDelivery is the server's CPU time per delivery, in seconds: the
// cores it used over the phase over the rate it reached.
func cpuPerDelivery(c cpuUse, rate float64) float64 {
	if rate <= 0 || c.server <= 0 {
		return nan
	}
	return c.server / rate
}

func usOf(sec float64) string {
	return ifNum(sec, func(v float64) string { return fmt.Sprintf("%.0f µs", v*1e6) })
}

var errSlowWithTarget = errors.New("-slow-destination needs a receiptd the bench starts (not -target)")
