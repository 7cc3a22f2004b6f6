package membudget

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/receiptd/receiptd/internal/bytesize"
)

// Default is memory_budget's default: the anonymous memory (Go heap,
// stacks, runtime) a receiptd process may use, whatever the size of its
// log and read models.
const Default = 256 << 20

// Min is the smallest budget accepted: below it the fixed costs (the
// runtime, connections' buffers, bbolt transactions) leave the caches
// nothing.
const Min = 64 << 20

// Plan is how a memory budget is spent: the Go runtime's soft
// memory limit and GC target, and the budgets of the caches, each
// counted by its owner in estimated heap bytes.
//
// The caches are given about an eighth of the budget (shares below); the
// rest is the Go heap's room to work: what requests, appends, commits
// and projection batches allocate between two collections. The smaller
// the caches' share, the less the collector costs (each cycle marks the
// live heap, and near the limit a cycle starts when the heap reaches it,
// so its CPU cost goes with live/(limit - live)); the larger, the fewer
// reads of the log and of the read-model file.
type Plan struct {
	Budget int64
	// GoLimit is the runtime's soft memory limit (debug.SetMemoryLimit):
	// the budget less a margin for what the runtime does not count
	// (the binary's data, pages of freed spans not yet returned).
	GoLimit int64
	// GCPercent is the GC target (debug.SetGCPercent) under that limit.
	GCPercent int
	// Decisions is the webhook decision cache's budget
	// (webhook.Options.DecisionCacheBytes).
	Decisions int64
	// Records is the read models' record cache (projections.WithCacheBytes);
	// a rebuild or an audit uses as much again for the file it builds.
	Records int64
	// Tail is the embedded store's tail of recent records kept for
	// subscribers (bolt.Options.TailBytes).
	Tail int64
	// Keys is the privacy keyring's cache of data keys
	// (privacy.Options.CacheBytes); 0 without a privacy section.
	Keys int64
	// Mapped bounds the pages of mapped files (the log, the read models,
	// a rebuild's scratch file) that the process keeps resident, which
	// ps and a container's limit count beside the anonymous memory: each
	// file's trimmer drops its mapping's pages as soon as the process's
	// resident file pages (ResidentMapped) pass it, besides its regular
	// trims (bolt.Options.MappedLimit, projections.WithMappedLimit).
	Mapped int64
}

// Shares of the budget, as divisors, and the GC target, measured under
// the bench's ingest (64 connections, 110,000-120,000 deliveries, the Go
// heap profiled after the fill, GC CPU from a CPU profile of the server;
// each setting one run, machine loaded by other work, so ±3 points):
//
//	                                   RssAnon end/peak   GC, share of server CPU
//	no budget (GOGC 100, caches 104 MiB)   421/411 MiB      23%
//	256 MiB, GOGC 100                      186/211 MiB      19%
//	256 MiB, GOGC 200                      223/220 MiB      15%
//	256 MiB, GOGC 400                      222/224 MiB      17%
//	256 MiB, GOGC off (the limit only)     222/225 MiB      16%
//
// At 256 MiB the caches' live heap was ~37 MB (read models' records), 16
// MB (decisions) and 11 MB (the store's tail: 1.4 times its estimate),
// ~76 MB in all with everything else: with GOGC 200 the collector's
// target (three times the live heap) is about the limit, so the limit
// rarely has to force a collection, and a smaller working set keeps a
// smaller heap (GOGC off would sit at the limit).
//
// Since (issue 13, 2026-12-07): the collector was still 30-35% of the
// server's CPU under that ingest (gctrace: ~72 us of GC CPU per delivery,
// ~49 KB allocated per delivery, live heap ~82 MB of a ~200 MB target),
// so the caches' share went from 66 MiB (a quarter) to 31 MiB (an
// eighth) and the serving GC target to 400, which leaves the limit to
// pace the collector on a smaller live heap. Two servers at once, each
// driven by its own generator with the bench's load (64 connections,
// 25 s measured, 3 rounds alternating which starts first; machine load
// 12-15 from other work; a throwaway script outside the repository:
// `bench -target` generators, CPU read from /proc), server CPU per
// delivery, medians:
//
//	caches 66 MiB, GOGC 200 (before)          229.6-236.1 us   RssAnon 206-217 MiB
//	caches 31 MiB, GOGC 200                   218.3 us (x0.925)  RssAnon  99-101 MiB
//	caches 31 MiB, GOGC 400 (these)           207.2 us (x0.902)  RssAnon 174-198 MiB
//	caches 31 MiB, GOGC off                   x0.997 of GOGC 400 RssAnon 223-224 MiB
//	caches 15 MiB, GOGC 400                   x0.986 of 31 MiB   RssAnon 121-131 MiB
//
// (each ratio against a run of the line it names, at the same time;
// an A/A run of one binary against itself gave x0.964 and x1.007), and
// with this change on main (27c4c16) against main: x0.899 (rounds
// x0.934, x0.892, x0.909; 207.7 -> 186.6 us). The decision cache
// answered 20-22% of lookups at 8 MiB, 24-26% at 16 MiB, 13% at 4 MiB:
// the bench's 275,000 streams outnumber any of these caches, so a hit is
// a delivery close in time to its receipt's last one, which the smaller
// cache keeps too.
const (
	shareDecisions = 32  // 8 MiB of 256 MiB: ~11,000 receipt streams
	shareRecords   = 12  // 21 MiB of 256 MiB
	shareTail      = 128 // 2 MiB of 256 MiB: ~1,700 events the subscribers have not read (they read the file past it)
	shareKeys      = 32  // 8 MiB of 256 MiB: ~8,000 data keys
	// offlineShareRecords is the records' share for audit, rebuild and
	// restore, which run no ingest: the live file's cache and the
	// rebuilt one's, each this much.
	offlineShareRecords = 4
	// shareMapped is the mapped files' share: half the budget, so that
	// anonymous and file-backed memory together stay near 1.5 times it
	// (384 MiB at 256 MiB; the binary's own pages count as file pages
	// too). With trims only on a timer (every second; every 100 ms for
	// a rebuild's scratch file) the offline rebuild at 1,000,000
	// receipts peaked at a VmHWM of 759-770 MiB, file pages 522-540
	// MiB; with this limit (and, then, the bulk build's scattered
	// transactions sized by it) 401-409 MiB, file pages 175-182 MiB, in
	// two pairs run in turn (issue 13, 2026-12-07); since the bulk build
	// writes each bucket once in key order from sorted runs (no
	// scattered transactions), 281-285 MiB.
	shareMapped = 2
	// goLimitMargin is what the Go limit leaves of the budget, as a
	// divisor: 1/16, for what the runtime does not count (the binary's
	// data) and pages it has not yet returned.
	goLimitMargin = 16
	// gcPercent is the GC target of an offline command; gcPercentServing
	// that of `receiptd serve` (see above).
	gcPercent        = 200
	gcPercentServing = 400
)

// Request is what a plan is made for.
type Request struct {
	// Budget is the whole budget, in bytes.
	Budget int64
	// Serving is true for `receiptd serve`, false for an offline command
	// (audit, rebuild, restore, privacy), which runs no ingest.
	Serving bool
	// DecisionCacheBytes and KeyCacheBytes are cache sizes set
	// explicitly (ingest.decision_cache_bytes, privacy.cache_bytes);
	// 0 lets the budget size them.
	DecisionCacheBytes int64
	KeyCacheBytes      int64
	// Keys is true when the process keeps a keyring (privacy configured).
	Keys bool
}

// New returns the plan of r. Cache sizes set explicitly are kept.
func New(r Request) Plan {
	b := r.Budget
	p := Plan{
		Budget:    b,
		GoLimit:   b - b/goLimitMargin,
		GCPercent: gcPercent,
		Decisions: b / shareDecisions,
		Records:   b / shareRecords,
		Tail:      b / shareTail,
		Mapped:    b / shareMapped,
	}
	if r.Serving {
		p.GCPercent = gcPercentServing
	} else {
		p.Decisions, p.Tail = 0, 0
		p.Records = b / offlineShareRecords
	}
	if r.DecisionCacheBytes > 0 {
		p.Decisions = r.DecisionCacheBytes
	}
	if r.Keys {
		p.Keys = cmpOr(r.KeyCacheBytes, b/shareKeys)
	}
	return p
}

func cmpOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// MaxExplicit is the most the caches sized explicitly may take of a
// budget: half; the Go heap needs the rest to work in.
func MaxExplicit(budget int64) int64 { return budget / 2 }

// Apply sets the Go runtime's memory limit and GC target from the plan,
// unless the environment sets them (GOMEMLIMIT, GOGC: an operator's
// override, which the runtime has already applied), and logs the plan
// (unless logger is nil).
func (p Plan) Apply(logger *slog.Logger) {
	limit, gc := "memory_budget", strconv.Itoa(p.GCPercent)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(p.GoLimit)
	} else {
		limit = "GOMEMLIMIT"
	}
	if v := os.Getenv("GOGC"); v == "" {
		debug.SetGCPercent(p.GCPercent)
	} else {
		gc = "GOGC=" + v
	}
	if logger == nil {
		return
	}
	logger.Info("memory budget",
		"budget", bytesize.Size(p.Budget).String(),
		"go_memory_limit", bytesize.Size(debug.SetMemoryLimit(-1)).String(), // a negative limit reads it
		"go_memory_limit_from", limit, "gogc", gc,
		"decision_cache", bytesize.Size(p.Decisions).String(),
		"record_cache", bytesize.Size(p.Records).String(),
		"store_tail", bytesize.Size(p.Tail).String(),
		"key_cache", bytesize.Size(p.Keys).String(),
		"mapped_limit", bytesize.Size(p.Mapped).String())
}
