package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/bench/benchdata"
)

// A round measures every binary once, on fresh data dirs, after the
// reference handler: the same universe, the same delivery order and the
// same load for each. With -baseline the rounds alternate old, new, old,
// new, …, and the report quotes the median of the rounds per binary.
type round struct {
	ref      *stats
	refCPU   cpuUse
	ablation []ablationResult // round 1 only
	runs     []*binRun        // one per binary, in the report's order
	slow     *slowRun         // -slow-destination: the new binary's ingest with slow feed consumers
}

// binRun is what one binary did in one round.
type binRun struct {
	// On a fresh data dir: closed-loop ingest, queries alone, queries
	// during ingest at half that rate, then ingest until -rss-deliveries.
	ingest, queryAlone, query, halfIngest *stats
	ingestCPU, queryAloneCPU, queryCPU    cpuUse
	rssFill                               *stats
	rssDeliveries                         int
	rssEvents                             float64
	mem                                   memStatus
	heap                                  float64
	files                                 dirSizes // at the end

	// On a second fresh data dir: the first -rebuild-deliveries
	// deliveries, then the rebuilds of their read models.
	rb *rebuildSet
}

type rebuildSet struct {
	fill       *stats
	events     float64
	files      dirSizes
	offline    rebuildResult // `receiptd rebuild`, page cache warm
	cold, warm rebuildResult // catch-up of empty read models at server start
}

// runRound measures the reference handler, then (in round 1, with
// -ablation) the webhook handler alone, then each binary.
func runRound(ctx context.Context, o options, bins []receiptdBin, dest *slowDestination, u benchdata.Universe, tmp string, n int) (*round, error) {
	rd := &round{}
	logf("round %d/%d: reference handler, %d connections, %v", n, o.rounds, o.conns, o.duration)
	ref, err := startReference()
	if err != nil {
		return rd, err
	}
	m := startMeter(ref)
	rd.ref = ingestLoad{url: "http://" + ref.httpAddr + "/webhooks/reewild", seq: newSequence(u, o.dup, o.seed), sign: newSigner([]byte(benchSecret)),
		conns: o.conns, warmup: o.warmup, measure: o.duration}.run(ctx)
	rd.refCPU = m.stop()
	ref.kill()
	if n == 1 && o.ablation {
		if rd.ablation, err = ablation(ctx, o, u, tmp); err != nil {
			return rd, err
		}
	}
	if n%2 == 0 { // even rounds: the slow consumers' run first
		if err := runSlow(ctx, o, bins, dest, u, tmp, n, rd); err != nil {
			return rd, err
		}
	}
	for _, b := range bins {
		run, err := measureBinary(ctx, b, tmp, o, u, n)
		rd.runs = append(rd.runs, run)
		if err != nil {
			return rd, fmt.Errorf("round %d, %s binary %s: %w", n, b.name, b.path, err)
		}
	}
	if n%2 == 1 {
		return rd, runSlow(ctx, o, bins, dest, u, tmp, n, rd)
	}
	return rd, nil
}

// ablation measures the webhook handler alone (this source tree's, in
// this binary), over an in-memory and over the embedded store.
func ablation(ctx context.Context, o options, u benchdata.Universe, tmp string) ([]ablationResult, error) {
	var out []ablationResult
	for _, kind := range []string{"mem", "bolt"} {
		logf("ablation: webhook handler over the %s store, no read models, %d connections, %v", kind, o.conns, o.duration)
		dir := filepath.Join(tmp, "ablation-"+kind)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return out, err
		}
		c, err := startIngestOnly(kind, dir)
		if err != nil {
			return out, err
		}
		m := startMeter(c)
		st := ingestLoad{url: "http://" + c.httpAddr + "/webhooks/reewild", seq: newSequence(u, o.dup, o.seed), sign: newSigner([]byte(benchSecret)),
			conns: o.conns, warmup: o.warmup, measure: o.duration}.run(ctx)
		out = append(out, ablationResult{kind: kind, stats: st, cpu: m.stop()})
		c.kill()
		os.RemoveAll(dir)
	}
	return out, nil
}

// measureBinary runs every measured phase of one binary in round n.
func measureBinary(ctx context.Context, b receiptdBin, tmp string, o options, u benchdata.Universe, n int) (*binRun, error) {
	run := &binRun{}
	name := fmt.Sprintf("%s-r%d", b.name, n)
	dir := filepath.Join(tmp, name)
	defer os.RemoveAll(dir)
	srv, err := startReceiptd(b, dir, o.profileDir != "")
	if err != nil {
		return run, err
	}
	defer func() { srv.kill() }()
	s := &session{o: o, name: name, srv: srv, seq: newSequence(u, o.dup, o.seed), kn: &known{u: u},
		url: "http://" + srv.httpAddr + "/webhooks/reewild", sign: newSigner([]byte(benchSecret))}
	phases := []func(context.Context, *binRun) error{s.ingest, s.queries, s.memory}
	if o.skipQueries {
		phases = []func(context.Context, *binRun) error{s.ingest, s.memory}
	}
	for _, phase := range phases {
		if err := phase(ctx, run); err != nil {
			return run, err
		}
	}
	if err := srv.stop(); err != nil {
		return run, fmt.Errorf("receiptd: %w", err)
	}
	if run.files, err = measureDataDir(dir, o.logFiles); err != nil {
		return run, err
	}
	os.RemoveAll(dir)
	if !o.skipRebuild {
		run.rb, err = rebuildPhase(ctx, b, filepath.Join(tmp, name+"-rebuild"), o, u, name)
	}
	return run, err
}

// session is one receiptd process under load, and the state its phases
// share: the delivery sequence, and the ids acknowledged for the queries.
type session struct {
	o    options
	name string // prefix of its profiles
	srv  *child
	seq  *sequence
	kn   *known
	url  string
	sign *signer
}

func (s *session) load() ingestLoad {
	return ingestLoad{url: s.url, seq: s.seq, sign: s.sign, conns: s.o.conns}
}

// ingest: closed loop for -duration.
func (s *session) ingest(ctx context.Context, run *binRun) error {
	logf("%s: ingest, %d connections, %v", s.name, s.o.conns, s.o.duration)
	stopProfile := profile(ctx, s.srv, s.o, s.name+"-ingest", s.o.warmup, s.o.duration)
	m := startMeter(s.srv)
	l := s.load()
	l.warmup, l.measure, l.onOK = s.o.warmup, s.o.duration, s.kn.add
	run.ingest = l.run(ctx)
	run.ingestCPU = m.stop()
	stopProfile()
	if run.ingest.ok == 0 {
		return fmt.Errorf("receiptd acknowledged nothing: %s\n%s", run.ingest.errorSummary(), s.srv.logTail())
	}
	return nil
}

// queries: gRPC reads alone, then during ingest paced at half the rate
// ingest reached (or at -query-ingest-rate).
func (s *session) queries(ctx context.Context, run *binRun) error {
	if err := waitCaughtUp(ctx, s.srv, 10*time.Minute); err != nil {
		return err
	}
	o := s.o
	logf("%s: gRPC queries alone (no ingest), %d workers, %v", s.name, o.queryWorkers, o.duration)
	m := startMeter(s.srv)
	var err error
	run.queryAlone, err = queryLoad(ctx, s.srv.grpcAddr, s.kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
	run.queryAloneCPU = m.stop()
	if err != nil {
		return err
	}
	half := o.queryPace(run.ingest.rate())
	logf("%s: gRPC queries during ingest paced at %.0f/s, %v", s.name, half, o.duration)
	stopProfile := profile(ctx, s.srv, o, s.name+"-query", o.warmup, o.duration)
	defer stopProfile()
	pctx, stopPace := context.WithCancel(ctx)
	defer stopPace()
	halfDone := make(chan *stats, 1)
	go func() {
		l := s.load()
		l.warmup, l.measure, l.pace, l.onOK = o.warmup, o.duration, pacer(pctx, half), s.kn.add
		halfDone <- l.run(pctx)
	}()
	m = startMeter(s.srv)
	run.query, err = queryLoad(ctx, s.srv.grpcAddr, s.kn, o.queryConns, o.queryWorkers, o.warmup, o.duration)
	run.queryCPU = m.stop()
	run.halfIngest = <-halfDone
	return err
}

// memory: ingest until the server has received -rss-deliveries, then its
// resident memory once the read models have caught up.
func (s *session) memory(ctx context.Context, run *binRun) error {
	o := s.o
	if o.rssDeliveries <= 0 {
		return nil
	}
	if _, sent, _ := s.seq.counts(); o.rssDeliveries > sent {
		logf("%s: ingest until the server has received %d deliveries (%d so far)", s.name, o.rssDeliveries, sent)
		l := s.load()
		l.count = o.rssDeliveries - sent
		run.rssFill = l.run(ctx)
	}
	if err := waitCaughtUp(ctx, s.srv, 30*time.Minute); err != nil {
		return err
	}
	m, err := metrics(ctx, "http://"+s.srv.httpAddr+"/metrics", "go_memstats_heap_inuse_bytes", "receiptd_projection_checkpoint")
	if err != nil {
		return err
	}
	_, run.rssDeliveries, _ = s.seq.counts()
	run.heap, run.rssEvents = m["go_memstats_heap_inuse_bytes"], m["receiptd_projection_checkpoint"]
	run.mem = s.srv.memory()
	return nil
}

// rebuildPhase fills a fresh data dir with the first -rebuild-deliveries
// deliveries of the sequence, then times an offline rebuild with the log
// in the page cache, and the catch-up of empty read models at server
// start, cold and warm.
func rebuildPhase(ctx context.Context, b receiptdBin, dir string, o options, u benchdata.Universe, name string) (*rebuildSet, error) {
	defer os.RemoveAll(dir)
	set := &rebuildSet{}
	srv, err := startReceiptd(b, dir, false)
	if err != nil {
		return set, err
	}
	defer srv.kill()
	logf("%s: a log of the first %d deliveries, for the rebuilds", name, o.rebuildDeliveries)
	set.fill = ingestLoad{url: "http://" + srv.httpAddr + "/webhooks/reewild", seq: newSequence(u, o.dup, o.seed),
		sign: newSigner([]byte(benchSecret)), conns: o.conns, count: o.rebuildDeliveries}.run(ctx)
	if set.events, err = stopCaughtUp(ctx, srv, 30*time.Minute); err != nil {
		return set, err
	}
	if set.files, err = measureDataDir(dir, o.logFiles); err != nil {
		return set, err
	}
	logf("%s: offline rebuild of %.0f events, page cache warm", name, set.events)
	if set.offline, err = offlineRebuild(ctx, b, dir, set.events, false, o, name+"-rebuild-offline"); err != nil {
		return set, err
	}
	logf("%s: catch-up of empty read models at server start, page cache dropped", name)
	if set.cold, err = catchUp(ctx, b, dir, set.events, true, o, name+"-catchup-cold"); err != nil {
		return set, err
	}
	logf("%s: catch-up again, log in the page cache", name)
	set.warm, err = catchUp(ctx, b, dir, set.events, false, o, name+"-catchup-warm")
	return set, err
}

type growResult struct {
	bin      string
	receipts int
	fill     *stats
	distinct int
	events   float64
	files    dirSizes
	mem      memStatus
	offline  rebuildResult // `receiptd rebuild`, page cache dropped
	catchUp  rebuildResult // empty read models at server start, page cache dropped
}

// growRun fills a fresh data dir with every delivery of n receipts at full
// speed, then rebuilds its read models offline and by a catch-up at
// server start, each with the page cache dropped.
func growRun(ctx context.Context, b receiptdBin, tmp string, o options, n int) (growResult, error) {
	u := benchdata.Universe{Seed: o.seed + uint64(n), Users: max(1, n/10), Receipts: n}
	dir := filepath.Join(tmp, fmt.Sprintf("grow-%s-%d", b.name, n))
	if !o.keepGrow {
		defer os.RemoveAll(dir)
	} else {
		defer logf("grow %d receipts, %s: data dir kept: %s", n, b.name, dir)
	}
	g := growResult{bin: b.name, receipts: n}
	srv, err := startReceiptd(b, dir, false)
	if err != nil {
		return g, err
	}
	defer srv.kill()
	seq := newSequence(u, o.dup, o.seed)
	logf("grow %d receipts, %s: ingest of %d distinct deliveries (+%.0f%% re-deliveries), %d connections", n, b.name, u.Size(), o.dup*100, o.conns)
	g.fill = ingestLoad{url: "http://" + srv.httpAddr + "/webhooks/reewild", seq: seq, sign: newSigner([]byte(benchSecret)), conns: o.conns}.run(ctx)
	g.distinct, g.fill.sent, g.fill.sentDups = seq.counts()
	if err := waitCaughtUp(ctx, srv, 3*time.Hour); err != nil {
		return g, err
	}
	g.mem = srv.memory()
	if g.events, err = stopCaughtUp(ctx, srv, time.Minute); err != nil {
		return g, err
	}
	if g.files, err = measureDataDir(dir, o.logFiles); err != nil {
		return g, err
	}
	name := fmt.Sprintf("%s-grow-%d", b.name, n)
	logf("grow %d receipts, %s: offline rebuild, page cache dropped", n, b.name)
	if g.offline, err = offlineRebuild(ctx, b, dir, g.events, true, o, name+"-rebuild-offline"); err != nil {
		return g, err
	}
	logf("grow %d receipts, %s: catch-up of empty read models at server start, page cache dropped", n, b.name)
	g.catchUp, err = catchUp(ctx, b, dir, g.events, true, o, name+"-catchup-cold")
	return g, err
}

// queryPace is the ingest rate of the queries-during-ingest phase for a
// binary whose closed-loop ingest reached rate: half of it, or
// -query-ingest-rate for every binary.
func (o options) queryPace(rate float64) float64 {
	if o.queryIngestRate > 0 {
		return o.queryIngestRate
	}
	return rate / 2
}

// queryPaceNote names that rate in the report.
func (o options) queryPaceNote() string {
	if o.queryIngestRate > 0 {
		return fmt.Sprintf("paced at %s deliveries/s for every binary (-query-ingest-rate)", thousands(o.queryIngestRate))
	}
	return "at half the binary's own rate"
}
