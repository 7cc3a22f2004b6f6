// Command bench measures receiptd on this machine and prints the table the
// README's "Performance" section quotes: each target of issue 13 beside
// the figure of this run, and with -baseline, beside the figure of an
// older receiptd binary measured in the same run.
//
//	go run ./bench                                        # the new binary alone
//	go run ./bench -baseline /path/to/old/receiptd        # old and new side by side, 2 rounds
//	go run ./bench -grow 10000,100000,1000000             # the "How it grows" table too
//	go run ./bench -slow-destination 200ms                # ingest with and without slow feed consumers
//
// It builds cmd/receiptd (or runs -receiptd), runs it as a child process
// on temporary data directories with one Reewild source, and drives it
// over loopback with signed deliveries shaped like the Reewild seed's
// payloads (every event type, 3–7 items per receipt, many receipts and
// users, shuffled, 20% exact re-deliveries) from -conns keep-alive
// connections, each sending its next delivery as soon as the previous one
// is answered (closed loop). In every round it first drives a reference
// handler — a bare net/http server that reads the body and answers 200,
// started as a child process the same way — with the same generator, and
// prints ingest as a share of that ceiling from the same round.
//
// Each round, for each binary in turn (old, then new):
//
//  1. ingest: a fresh data dir, closed loop, -conns connections.
//  2. queries: gRPC GetReceipt/GetBalance (alternating, ids the server
//     acknowledged) from -query-workers goroutines, alone, then while
//     ingest runs paced at half the rate phase 1 reached.
//  3. memory: ingest continues until the process has received
//     -rss-deliveries deliveries in all; then its VmRSS, RssAnon, RssFile
//     and VmHWM from /proc/PID/status.
//  4. rebuild: a second fresh data dir filled with the first
//     -rebuild-deliveries deliveries; the server stopped, `receiptd
//     rebuild` timed as a whole process (page cache warm); then the read
//     models deleted and a fresh server timed until its checkpoint reaches
//     the head (page cache dropped, then warm).
//
// In round 1, after the reference, the webhook handler of this source
// tree runs alone over an in-memory and over the embedded store
// (-ablation). With -grow, after the rounds: for each size and binary (the
// old one only with -grow-baseline), a fresh data dir filled with every
// delivery of that many receipts, then a cold offline rebuild and a cold
// catch-up.
//
// With -slow-destination D, each round also runs the new binary's ingest
// phase on a fresh data dir with a feed destination that answers each
// request after D (a receiver in this process) and -slow-subscribers SSE
// subscribers reading one event per D, and reports its rate beside the
// same round's ingest without them (issue 15: within 10%).
//
// Targets are printed beside the measurements; nothing here fails on
// them, and CI never runs this command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/receiptd/receiptd/bench/benchdata"
)

type options struct {
	conns             int
	duration          time.Duration
	warmup            time.Duration
	receipts          int
	users             int
	dup               float64
	queryConns        int
	queryWorkers      int
	queryIngestRate   float64
	rssDeliveries     int
	rebuildDeliveries int
	grow              []int
	growBaseline      bool
	profileDir        string
	dataDir           string
	keepGrow          bool
	seed              uint64
	skipRebuild       bool
	skipQueries       bool
	bin               string
	baseline          string
	rounds            int
	memoryBudget      string
	configExtra       []string
	logFiles          string
	ablation          bool
	target            string
	secret            string
	grpcTarget        string
	slowDestination   time.Duration
	slowSubscribers   int
}

// lines is a repeatable string flag.
type lines []string

func (l *lines) String() string     { return strings.Join(*l, "; ") }
func (l *lines) Set(v string) error { *l = append(*l, v); return nil }

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
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
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

func parseFlags() (options, error) {
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
	flag.Float64Var(&o.queryIngestRate, "query-ingest-rate", 0, "pace the ingest of the queries-during-ingest phase at this many deliveries/s for every binary (0: half of each binary's own ingest rate); the same load for old and new, so their reads compare")
	flag.IntVar(&o.rssDeliveries, "rss-deliveries", 1_000_000, "deliveries the server has received when its memory is read (0: skip)")
	flag.IntVar(&o.rebuildDeliveries, "rebuild-deliveries", 250_000, "deliveries in the log the rebuilds replay (250,000 with 20% re-deliveries: ~200,000 events)")
	flag.StringVar(&grow, "grow", "", "comma-separated receipt counts for the How-it-grows table (e.g. 10000,100000,1000000)")
	flag.BoolVar(&o.growBaseline, "grow-baseline", false, "with -baseline and -grow: grow the old binary too (hours at 1,000,000 receipts)")
	flag.StringVar(&o.profileDir, "profile", "", "if set, save receiptd CPU profiles of the ingest, query and rebuild phases here")
	flag.StringVar(&o.dataDir, "data", "", "parent of the data dirs (default: a temporary dir, removed)")
	flag.BoolVar(&o.keepGrow, "keep-grow", false, "with -data and -grow: keep each grow data dir (its log and read models) for later runs, e.g. timing a newer binary's rebuild of the same log")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the delivery universe and order")
	flag.BoolVar(&o.skipRebuild, "skip-rebuild", false, "skip the rebuild phase")
	flag.BoolVar(&o.skipQueries, "skip-queries", false, "skip the gRPC query phases (with -slow-destination: more rounds of ingest in the same time)")
	flag.StringVar(&o.bin, "receiptd", "", "the new receiptd binary (default: build ./cmd/receiptd)")
	flag.StringVar(&o.baseline, "baseline", "", "an older receiptd binary to measure in the same run, alternating with the new one")
	flag.IntVar(&o.rounds, "rounds", 0, "rounds of every measured phase (default: 2 with -baseline, else 1)")
	flag.StringVar(&o.memoryBudget, "memory-budget", "", "write memory_budget: SIZE (e.g. 256MiB) in the new binary's config (not the baseline's)")
	flag.Var((*lines)(&o.configExtra), "config-extra", "a YAML line appended to the new binary's config (not the baseline's); repeatable")
	flag.StringVar(&o.logFiles, "log-files", "events*", "comma-separated globs of the data dir entries that are the log; every other entry is read models")
	flag.StringVar(&o.target, "target", "", "drive an already running receiptd at this base URL (e.g. http://127.0.0.1:8080) instead of starting one: ingest (and, with -grpc, queries) only")
	flag.StringVar(&o.secret, "secret", benchSecret, "with -target: the Reewild source's secret (literal)")
	flag.StringVar(&o.grpcTarget, "grpc", "", "with -target: receiptd's gRPC address, for the query phase")
	flag.DurationVar(&o.slowDestination, "slow-destination", 0, "if set, each round also runs the new binary's ingest with a feed destination answering each request after this long and -slow-subscribers slow SSE subscribers, beside its ingest without them (issue 15)")
	flag.IntVar(&o.slowSubscribers, "slow-subscribers", 4, "with -slow-destination: subscribers of GET /v1/feed reading one event per -slow-destination")
	flag.BoolVar(&o.ablation, "ablation", true, "also measure the webhook handler alone, over an in-memory and over the embedded store, without read models")
	flag.Parse()
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	for _, f := range strings.Split(grow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 {
			return o, fmt.Errorf("-grow: %q is not a receipt count", f)
		}
		o.grow = append(o.grow, n)
	}
	if o.rounds == 0 {
		o.rounds = 1
		if o.baseline != "" {
			o.rounds = 2
		}
	}
	if o.rounds < 1 {
		return o, errors.New("-rounds must be at least 1")
	}
	if o.queryIngestRate < 0 || math.IsNaN(o.queryIngestRate) || math.IsInf(o.queryIngestRate, 0) {
		return o, errors.New("-query-ingest-rate must be a rate in deliveries/s, or 0 for half of each binary's own")
	}
	if o.keepGrow && (o.dataDir == "" || len(o.grow) == 0) {
		return o, errors.New("-keep-grow needs -data and -grow")
	}
	if o.slowDestination > 0 && o.target != "" {
		return o, errSlowWithTarget
	}
	if o.slowSubscribers < 0 {
		return o, errors.New("-slow-subscribers must not be negative")
	}
	if o.growBaseline && o.baseline == "" {
		return o, errors.New("-grow-baseline needs -baseline")
	}
	return o, nil
}

// logf reports progress on stderr; the tables go to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// run measures the binaries in -rounds rounds, then grows them, then
// prints the report (what there is of it, if a phase fails).
func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp(o.dataDir, "receiptd-bench-")
	if err != nil {
		return err
	}
	if !o.keepGrow {
		defer os.RemoveAll(tmp)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o750); err != nil {
			return err
		}
	}
	bins, err := binaries(o, tmp)
	if err != nil {
		return err
	}
	u := benchdata.Universe{Seed: o.seed, Users: o.users, Receipts: o.receipts}
	rep := &report{opts: o, started: time.Now(), sizes: sizeStats(u, 20_000), bins: bins}
	var dest *slowDestination
	if o.slowDestination > 0 {
		if dest, err = startSlowDestination(o.slowDestination); err != nil {
			return err
		}
		defer dest.close()
	}
	err = measureAll(ctx, o, bins, dest, u, tmp, rep)
	rep.print(os.Stdout)
	return err
}

func measureAll(ctx context.Context, o options, bins []receiptdBin, dest *slowDestination, u benchdata.Universe, tmp string, rep *report) error {
	for n := 1; n <= o.rounds; n++ {
		rd, err := runRound(ctx, o, bins, dest, u, tmp, n)
		rep.rounds = append(rep.rounds, rd)
		if err != nil {
			return err
		}
	}
	for _, size := range o.grow {
		for _, b := range bins {
			if b.name == "old" && !o.growBaseline {
				continue
			}
			g, err := growRun(ctx, b, tmp, o, size)
			rep.grow = append(rep.grow, g)
			if err != nil {
				return fmt.Errorf("grow %d, %s binary: %w", size, b.name, err)
			}
		}
	}
	return nil
}

// binaries returns the receiptd binaries to measure: the -baseline (old),
// if any, then the new one (-receiptd, or built from this tree).
func binaries(o options, tmp string) ([]receiptdBin, error) {
	path := o.bin
	desc := "-receiptd"
	if path == "" {
		logf("building cmd/receiptd")
		var err error
		if path, err = buildReceiptd(tmp); err != nil {
			return nil, err
		}
		desc = "built from this tree"
		if c := treeCommit(); c != "" {
			desc += " at " + c
		}
	}
	var extra strings.Builder
	if o.memoryBudget != "" {
		fmt.Fprintf(&extra, "memory_budget: %s\n", o.memoryBudget)
	}
	for _, l := range o.configExtra {
		fmt.Fprintln(&extra, l)
	}
	newBin := receiptdBin{name: "new", path: path, desc: desc + ", " + describe(path), extra: extra.String()}
	if o.baseline == "" {
		return []receiptdBin{newBin}, nil
	}
	if _, err := os.Stat(o.baseline); err != nil {
		return nil, fmt.Errorf("-baseline: %w", err)
	}
	return []receiptdBin{{name: "old", path: o.baseline, desc: "-baseline, " + describe(o.baseline)}, newBin}, nil
}

// runTarget drives a receiptd the bench did not start: ingest closed loop
// for -duration, then (with -grpc) queries during ingest at half that rate.
// The deliveries go to the source named reewild; the server must have it
// configured with -secret.
func runTarget(ctx context.Context, o options) error {
	u := benchdata.Universe{Seed: o.seed, Users: o.users, Receipts: o.receipts}
	o.rounds = 1
	run := &binRun{}
	rep := &report{opts: o, started: time.Now(), sizes: sizeStats(u, 20_000),
		bins: []receiptdBin{{name: "target", path: o.target, desc: "already running"}}, rounds: []*round{{runs: []*binRun{run}}}}
	seq := newSequence(u, o.dup, o.seed)
	kn := &known{u: u}
	url := strings.TrimRight(o.target, "/") + "/webhooks/reewild"
	sign := newSigner([]byte(o.secret))
	logf("ingest: %s, %d connections, %v", url, o.conns, o.duration)
	run.ingest = ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration, onOK: kn.add}.run(ctx)
	if o.grpcTarget != "" && run.ingest.ok > 0 {
		half := o.queryPace(run.ingest.rate())
		logf("queries: %s, %d workers, during ingest paced at %.0f/s", o.grpcTarget, o.queryWorkers, half)
		pctx, stopPace := context.WithCancel(ctx)
		halfDone := make(chan *stats, 1)
		go func() {
			halfDone <- ingestLoad{url: url, seq: seq, sign: sign, conns: o.conns, warmup: o.warmup, measure: o.duration, pace: pacer(pctx, half), onOK: kn.add}.run(pctx)
		}()
		var err error
		run.query, err = queryLoad(ctx, o.grpcTarget, kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
		run.halfIngest = <-halfDone
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
		if lag, ok := m["receiptd_projection_lag_events"]; err == nil && ok && lag == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("read models still behind after %v (lag %v, err %v)", limit, m["receiptd_projection_lag_events"], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
