// Command bench measures receiptd on this machine and prints the table the
// README's "Performance" section quotes, each figure beside its target.
//
//	go run ./bench                      # everything, ~10 minutes on 2 cores
//	go run ./bench -rss-deliveries 200000 -duration 10s
//	go run ./bench -grow 10000,100000   # the "How it grows" table too
//
// It builds cmd/receiptd, runs it as a child process on a temporary data
// directory with one Reewild source, and drives it over loopback with
// signed deliveries shaped like the Reewild seed's payloads (every event
// type, 3–7 items per receipt, many receipts and users, shuffled, 20% exact
// re-deliveries) from -conns keep-alive connections, each sending its next
// delivery as soon as the previous one is answered (closed loop). In the
// same run it drives a reference handler — a bare net/http server that
// reads the body and answers 200, started as a child process the same way —
// with the same generator, and prints each ingest figure as a ratio to
// that ceiling.
//
// Phases, in order, on one receiptd process unless said otherwise:
//
//  1. reference: the bare handler, closed loop, -conns connections.
//  2. ingest: receiptd on a fresh data dir, closed loop, -conns connections.
//  3. queries: gRPC GetReceipt/GetBalance (alternating, ids the server
//     acknowledged), closed loop from -query-workers goroutines, while
//     ingest runs paced at half the rate phase 2 reached.
//  4. rss: ingest continues until the process has received
//     -rss-deliveries deliveries in all; then its
//     process_resident_memory_bytes (and the peak sampled every second).
//  5. rebuild: SIGTERM, delete views.db, start a fresh process on the same
//     log and time until receiptd_projection_checkpoint reaches the head.
//  6. grow (with -grow): for each size, a fresh data dir filled with every
//     delivery of that many receipts (plus 20% re-deliveries) at full
//     speed, then a rebuild of its read models.
//
// Targets are printed beside the measurements; nothing here fails on
// them, and CI never runs this command.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	conns         int
	duration      time.Duration
	warmup        time.Duration
	receipts      int
	users         int
	dup           float64
	queryConns    int
	queryWorkers  int
	rssDeliveries int
	grow          []int
	profileDir    string
	dataDir       string
	seed          uint64
	skipRebuild   bool
	bin           string
	ablation      bool
	target        string
	secret        string
	grpcTarget    string
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == ingestOnlyArg {
		if err := runIngestOnly(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "ingest-only server:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 2 && os.Args[1] == referenceArg {
		if err := runReference(); err != nil {
			fmt.Fprintln(os.Stderr, "reference handler:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var grow string
	flag.IntVar(&o.conns, "conns", 64, "ingest connections (closed loop, keep-alive)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured window of each rate phase")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured warm-up before each window")
	flag.IntVar(&o.receipts, "receipts", 250_000, "receipts in the delivery universe (6 deliveries each)")
	flag.IntVar(&o.users, "users", 25_000, "users in the delivery universe (one user.enrolled each)")
	flag.Float64Var(&o.dup, "dup", 0.2, "share of sends that are exact re-deliveries")
	flag.IntVar(&o.queryConns, "query-conns", 4, "gRPC connections of the query phase")
	flag.IntVar(&o.queryWorkers, "query-workers", 32, "concurrent gRPC callers of the query phase")
	flag.IntVar(&o.rssDeliveries, "rss-deliveries", 1_000_000, "deliveries the server has received when RSS is read (0: skip)")
	flag.StringVar(&grow, "grow", "", "comma-separated receipt counts for the How-it-grows table (e.g. 10000,100000,1000000)")
	flag.StringVar(&o.profileDir, "profile", "", "if set, save receiptd CPU profiles of the ingest, query and rebuild phases here")
	flag.StringVar(&o.dataDir, "data", "", "parent of the data dirs (default: a temporary dir, removed)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the delivery universe and order")
	flag.BoolVar(&o.skipRebuild, "skip-rebuild", false, "skip the rebuild phase")
	flag.StringVar(&o.bin, "receiptd", "", "receiptd binary to run (default: build ./cmd/receiptd)")
	flag.StringVar(&o.target, "target", "", "drive an already running receiptd at this base URL (e.g. http://127.0.0.1:8080) instead of starting one: ingest (and, with -grpc, queries) only")
	flag.StringVar(&o.secret, "secret", benchSecret, "with -target: the Reewild source's secret (literal)")
	flag.StringVar(&o.grpcTarget, "grpc", "", "with -target: receiptd's gRPC address, for the query phase")
	flag.BoolVar(&o.ablation, "ablation", true, "also measure the webhook handler alone, over an in-memory and over the embedded store, without read models")
	flag.Parse()
	for _, f := range strings.Split(grow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -grow: %q is not a receipt count\n", f)
			os.Exit(2)
		}
		o.grow = append(o.grow, n)
	}
	runFn := run
	if o.target != "" {
		runFn = runTarget
	}
	if err := runFn(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// logf reports progress on stderr; the tables go to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp(o.dataDir, "receiptd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o750); err != nil {
			return err
		}
	}
	bin := o.bin
	if bin == "" {
		logf("building cmd/receiptd")
		if bin, err = buildReceiptd(tmp); err != nil {
			return err
		}
	}
	rep := &report{opts: o, started: time.Now()}
	u := universe{seed: o.seed, nUsers: o.users, nReceipts: o.receipts}
	rep.sizes = sizeStats(u, 20_000)

	// 1. The ceiling.
	logf("phase 1: reference handler, %d connections, %v", o.conns, o.duration)
	ref, err := startReference()
	if err != nil {
		return err
	}
	refSeq := newSequence(u, o.dup, o.seed)
	m := startMeter(ref)
	rep.ref = ingestLoad{url: "http://" + ref.httpAddr + "/webhooks/reewild", seq: refSeq, sign: newSigner([]byte(benchSecret)),
		conns: o.conns, warmup: o.warmup, measure: o.duration}.run(ctx)
	rep.refCPU = m.stop()
	ref.kill()

	// 1b. Where the time goes: the handler without the read models.
	if o.ablation {
		for _, kind := range []string{"mem", "bolt"} {
			logf("phase 1b: webhook handler over the %s store, no read models, %d connections, %v", kind, o.conns, o.duration)
			dir := filepath.Join(tmp, "ablation-"+kind)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return err
			}
			c, err := startIngestOnly(kind, dir)
			if err != nil {
				return err
			}
			m := startMeter(c)
			st := ingestLoad{url: "http://" + c.httpAddr + "/webhooks/reewild", seq: newSequence(u, o.dup, o.seed), sign: newSigner([]byte(benchSecret)),
				conns: o.conns, warmup: o.warmup, measure: o.duration}.run(ctx)
			rep.ablation = append(rep.ablation, ablationResult{kind: kind, stats: st, cpu: m.stop()})
			c.kill()
			os.RemoveAll(dir)
		}
	}

	// 2. Ingest, closed loop.
	dataDir := filepath.Join(tmp, "main")
	srv, err := startReceiptd(bin, dataDir, o.profileDir != "")
	if err != nil {
		return err
	}
	defer func() { srv.kill() }()
	seq := newSequence(u, o.dup, o.seed)
	kn := &known{u: u}
	url := "http://" + srv.httpAddr + "/webhooks/reewild"
	sign := newSigner([]byte(benchSecret))
	logf("phase 2: receiptd ingest, %d connections, %v", o.conns, o.duration)
	stopProfile := profile(ctx, srv, o, "ingest", o.warmup, o.duration)
	m = startMeter(srv)
	rep.ingest = ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration, onOK: kn.add}.run(ctx)
	rep.ingestCPU = m.stop()
	stopProfile()
	if rep.ingest.ok == 0 {
		return fmt.Errorf("receiptd acknowledged nothing: %s\n%s", rep.ingest.errorSummary(), srv.logTail())
	}

	// 3. Queries during ingest at half its maximum.
	half := rep.ingest.rate() / 2
	logf("phase 3: gRPC queries (%d workers) during ingest paced at %.0f/s, %v", o.queryWorkers, half, o.duration)
	if err := waitCaughtUp(ctx, srv, time.Minute); err != nil {
		return err
	}
	logf("phase 3a: gRPC queries alone (no ingest), %v", o.duration)
	m = startMeter(srv)
	rep.queryAlone, err = queryLoad(ctx, srv.grpcAddr, kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
	rep.queryAloneCPU = m.stop()
	if err != nil {
		return err
	}
	logf("phase 3b: gRPC queries during ingest at half its rate, %v", o.duration)
	stopProfile = profile(ctx, srv, o, "query", o.warmup, o.duration)
	pctx, stopPace := context.WithCancel(ctx)
	halfDone := make(chan *stats, 1)
	go func() {
		halfDone <- ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration,
			pace: pacer(pctx, half), onOK: kn.add}.run(pctx)
	}()
	m = startMeter(srv)
	rep.query, err = queryLoad(ctx, srv.grpcAddr, kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
	rep.queryCPU = m.stop()
	rep.halfIngest = <-halfDone
	stopPace()
	stopProfile()
	if err != nil {
		return err
	}

	// 4. RSS after N deliveries.
	if _, sent, _ := seq.counts(); o.rssDeliveries > sent {
		logf("phase 4: ingest until the server has received %d deliveries (%d so far)", o.rssDeliveries, sent)
		peak := sampleRSS(ctx, srv)
		rep.rssFill = ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, count: o.rssDeliveries - sent}.run(ctx)
		rep.rssPeak = peak()
	}
	if o.rssDeliveries > 0 {
		if err := waitCaughtUp(ctx, srv, 10*time.Minute); err != nil {
			return err
		}
		m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "receiptd_projection_checkpoint")
		if err != nil {
			return err
		}
		_, rep.rssDeliveries, _ = seq.counts()
		rep.rss, rep.heap, rep.rssEvents = m["process_resident_memory_bytes"], m["go_memstats_heap_inuse_bytes"], m["receiptd_projection_checkpoint"]
		rep.mem = srv.memory()
		rep.rssPeak = max(rep.rssPeak, rep.rss)
	}

	// 5. Rebuild the read models of everything so far.
	if !o.skipRebuild {
		logf("phase 5: rebuild of the read models from the log, page cache dropped")
		rep.rebuild, err = rebuild(ctx, bin, dataDir, srv, o, "rebuild-cold", true)
		if err != nil {
			return err
		}
		logf("phase 5: rebuild again, log in the page cache")
		srv, err = startReceiptd(bin, dataDir, false)
		if err != nil {
			return err
		}
		rep.rebuildWarm, err = rebuild(ctx, bin, dataDir, srv, o, "rebuild-warm", false)
		if err != nil {
			return err
		}
	} else if err := srv.stop(); err != nil {
		return fmt.Errorf("receiptd: %w", err)
	}
	if _, sent, _ := seq.counts(); sent > 0 {
		rep.logBytes = fileSize(filepath.Join(dataDir, "events.db"))
		rep.viewBytes = fileSize(filepath.Join(dataDir, "views.db"))
	}
	os.RemoveAll(dataDir)

	// 6. How it grows.
	for _, n := range o.grow {
		g, err := growRun(ctx, bin, tmp, o, n)
		if err != nil {
			return err
		}
		rep.grow = append(rep.grow, g)
	}
	rep.print(os.Stdout)
	return nil
}

// runTarget drives a receiptd the bench did not start: ingest closed loop
// for -duration, then (with -grpc) queries during ingest at half that rate.
// The deliveries go to the source named reewild; the server must have it
// configured with -secret.
func runTarget(ctx context.Context, o options) error {
	u := universe{seed: o.seed, nUsers: o.users, nReceipts: o.receipts}
	rep := &report{opts: o, started: time.Now(), sizes: sizeStats(u, 20_000)}
	seq := newSequence(u, o.dup, o.seed)
	kn := &known{u: u}
	url := strings.TrimRight(o.target, "/") + "/webhooks/reewild"
	sign := newSigner([]byte(o.secret))
	logf("ingest: %s, %d connections, %v", url, o.conns, o.duration)
	rep.ingest = ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration, onOK: kn.add}.run(ctx)
	rep.ref = &stats{}
	if o.grpcTarget != "" && rep.ingest.ok > 0 {
		half := rep.ingest.rate() / 2
		logf("queries: %s, %d workers, during ingest paced at %.0f/s", o.grpcTarget, o.queryWorkers, half)
		pctx, stopPace := context.WithCancel(ctx)
		halfDone := make(chan *stats, 1)
		go func() {
			halfDone <- ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration, pace: pacer(pctx, half), onOK: kn.add}.run(pctx)
		}()
		var err error
		rep.query, err = queryLoad(ctx, o.grpcTarget, kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
		rep.halfIngest = <-halfDone
		stopPace()
		if err != nil {
			return err
		}
	}
	rep.print(os.Stdout)
	return nil
}

// profile fetches a CPU profile of the server for the measured window of a
// phase, in the background; the returned func waits for it.
func profile(ctx context.Context, srv *child, o options, name string, warmup, measure time.Duration) func() {
	if o.profileDir == "" || srv.pprof() == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(warmup):
		case <-ctx.Done():
			return
		}
		path := filepath.Join(o.profileDir, "receiptd-"+name+".pprof")
		f, err := os.Create(path)
		if err != nil {
			logf("profile %s: %v", name, err)
			return
		}
		defer f.Close()
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.pprof(), max(1, int(measure.Seconds())))
		if err := fetch(ctx, url, f); err != nil {
			logf("profile %s: %v", name, err)
			return
		}
		logf("saved %s", path)
	}()
	return func() { <-done }
}

// waitCaughtUp polls /metrics until the projection lag is zero.
func waitCaughtUp(ctx context.Context, srv *child, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "receiptd_projection_lag_events")
		if err == nil && m["receiptd_projection_lag_events"] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("read models still behind after %v (lag %v, err %v)", limit, m["receiptd_projection_lag_events"], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sampleRSS samples the server's RSS every second until the returned func
// is called, which returns the peak.
func sampleRSS(ctx context.Context, srv *child) func() float64 {
	ctx, cancel := context.WithCancel(ctx)
	peak := make(chan float64, 1)
	go func() {
		p := 0.0
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				peak <- p
				return
			case <-t.C:
				if m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "process_resident_memory_bytes"); err == nil {
					p = max(p, m["process_resident_memory_bytes"])
				}
			}
		}
	}()
	return func() float64 { cancel(); return <-peak }
}

type rebuildResult struct {
	events    float64
	total     time.Duration // process start to checkpoint at head
	afterOpen time.Duration // "listening" to checkpoint at head
	cpu       float64       // server CPU seconds used
	cold      bool          // the page cache was dropped before the start
}

func (r rebuildResult) rate() float64 {
	if r.total <= 0 {
		return 0
	}
	return r.events / r.total.Seconds()
}

// rebuild stops srv, deletes the read models of dataDir, starts a fresh
// process on the log and times it until its checkpoint reaches the head.
func rebuild(ctx context.Context, bin, dataDir string, srv *child, o options, name string, cold bool) (rebuildResult, error) {
	if err := waitCaughtUp(ctx, srv, 30*time.Minute); err != nil {
		return rebuildResult{}, err
	}
	m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "receiptd_projection_checkpoint")
	if err != nil {
		return rebuildResult{}, err
	}
	head := m["receiptd_projection_checkpoint"]
	if err := srv.stop(); err != nil {
		return rebuildResult{}, fmt.Errorf("receiptd: %w", err)
	}
	if err := os.Remove(filepath.Join(dataDir, "views.db")); err != nil {
		return rebuildResult{}, err
	}
	r := rebuildResult{cold: cold}
	if cold {
		r.cold = dropPageCache()
	}
	fresh, err := startReceiptd(bin, dataDir, o.profileDir != "")
	if err != nil {
		return rebuildResult{}, err
	}
	defer fresh.kill()
	listening := time.Now()
	stopProfile := func() {}
	if o.profileDir != "" {
		stopProfile = profile(ctx, fresh, o, name, 0, 10*time.Second)
	}
	for {
		m, err := metrics(ctx, "http://"+fresh.httpAddr+"/metrics", "receiptd_projection_checkpoint")
		if err != nil {
			return rebuildResult{}, err
		}
		if m["receiptd_projection_checkpoint"] >= head {
			done := time.Now()
			r.events, r.total, r.afterOpen, r.cpu = head, done.Sub(fresh.started), done.Sub(listening), fresh.cpuSeconds()
			stopProfile()
			return r, fresh.stop()
		}
		// Each scrape costs the server a little CPU: 20 a second keeps
		// that under 1% and the timing within 50 ms.
		time.Sleep(50 * time.Millisecond)
	}
}

// dropPageCache asks the kernel to forget cached file pages, so that a
// rebuild reads the log from the disk as after a reboot. It needs root and
// reports whether it worked; without it the rebuild runs on a warm cache,
// and the report says so.
func dropPageCache() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1\n"), 0o200) == nil
}

type growResult struct {
	receipts int
	fill     *stats
	distinct int
	events   float64
	rebuild  rebuildResult
	logBytes int64
	rss      float64
	mem      memStatus
}

// growRun fills a fresh data dir with every delivery of n receipts at full
// speed, then rebuilds its read models.
func growRun(ctx context.Context, bin, tmp string, o options, n int) (growResult, error) {
	users := max(1, n/10)
	u := universe{seed: o.seed + uint64(n), nUsers: users, nReceipts: n}
	dataDir := filepath.Join(tmp, fmt.Sprintf("grow-%d", n))
	defer os.RemoveAll(dataDir)
	srv, err := startReceiptd(bin, dataDir, false)
	if err != nil {
		return growResult{}, err
	}
	defer srv.kill()
	seq := newSequence(u, o.dup, o.seed)
	logf("grow %d receipts: ingest of %d distinct deliveries (+%.0f%% re-deliveries), %d connections", n, u.size(), o.dup*100, o.conns)
	g := growResult{receipts: n}
	g.fill = ingestLoad{url: "http://" + srv.httpAddr + "/webhooks/reewild", seq: seq, sign: newSigner([]byte(benchSecret)), conns: o.conns}.run(ctx)
	g.distinct, g.fill.sent, g.fill.sentDups = seq.counts()
	if err := waitCaughtUp(ctx, srv, time.Hour); err != nil {
		return g, err
	}
	if m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "process_resident_memory_bytes"); err == nil {
		g.rss = m["process_resident_memory_bytes"]
	}
	g.mem = srv.memory()
	logf("grow %d receipts: rebuild", n)
	g.rebuild, err = rebuild(ctx, bin, dataDir, srv, o, fmt.Sprintf("rebuild-%d", n), true)
	g.events = g.rebuild.events
	g.logBytes = fileSize(filepath.Join(dataDir, "events.db"))
	return g, err
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// selfCPUSeconds is this process's user+system CPU time (the load generator).
func selfCPUSeconds() float64 { return procCPUSeconds(os.Getpid()) }

// cpuUse is the CPU (in cores) a server and the generator used over a
// phase, and how busy the whole machine was meanwhile (kernel work such as
// loopback networking and disk flushes, and any other process, included).
type cpuUse struct{ server, generator, machine float64 }

func cpuShare(server, generator float64, d time.Duration) cpuUse {
	return cpuUse{server: server / d.Seconds(), generator: generator / d.Seconds()}
}

// machineBusy returns the busy and total jiffies of all CPUs so far.
func machineBusy() (busy, total float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// meter measures a phase's CPU: the server process's, the generator's and
// the machine's.
type meter struct {
	srv             *child
	start           time.Time
	srv0, self0, m0 float64
}

func startMeter(srv *child) meter {
	m, _ := machineBusy()
	return meter{srv: srv, start: time.Now(), srv0: srv.cpuSeconds(), self0: selfCPUSeconds(), m0: m}
}

func (m meter) stop() cpuUse {
	d := time.Since(m.start).Seconds()
	busy, _ := machineBusy()
	return cpuUse{server: (m.srv.cpuSeconds() - m.srv0) / d, generator: (selfCPUSeconds() - m.self0) / d, machine: (busy - m.m0) / 100 / d}
}

func cores() int { return runtime.NumCPU() }
