package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/receiptd/receiptd/internal/bytesize"
)

// DefaultMemoryBudget is memory_budget's default: the anonymous memory
// (Go heap, stacks, runtime) a receiptd process may use, whatever the size
// of its log and read models.
const DefaultMemoryBudget = 256 << 20

// minMemoryBudget is the smallest memory_budget accepted: below it the
// fixed costs (the runtime, connections' buffers, bbolt transactions)
// leave the caches nothing.
const minMemoryBudget = 64 << 20

// memoryPlan is how a memory budget is spent: the Go runtime's soft
// memory limit and GC target, and the budgets of the caches, each
// counted by its owner in estimated heap bytes.
//
// The caches are given about a third of the budget (shares below); the
// rest is the Go heap's room to work: what requests, appends, commits
// and projection batches allocate between two collections. The smaller
// the caches' share, the less often the collector runs (near the limit
// it runs when the heap reaches it, so its CPU cost goes with
// live/(limit - live)); the larger, the fewer reads of the log and of
// the read-model file (a decision cache miss cost 1.2-2.5% of the
// server's CPU in the runs below, the record cache's 3-4%).
type memoryPlan struct {
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
const (
	shareDecisions = 16 // 16 MiB of 256 MiB: ~22,000 receipt streams
	shareRecords   = 6  // 42 MiB of 256 MiB
	shareTail      = 32 // 8 MiB of 256 MiB (the store's own default)
	shareKeys      = 32 // 8 MiB of 256 MiB: ~8,000 data keys
	// offlineShareRecords is the records' share for audit, rebuild and
	// restore, which run no ingest: the live file's cache and the
	// rebuilt one's, each this much.
	offlineShareRecords = 4
	// goLimitMargin is what the Go limit leaves of the budget, as a
	// divisor: 1/16, for what the runtime does not count (the binary's
	// data) and pages it has not yet returned.
	goLimitMargin = 16
	gcPercent     = 200
)

// memory returns the plan of c's memory budget for `receiptd serve`
// (serving) or an offline command. Cache sizes set explicitly in the
// config (ingest.decision_cache_bytes, privacy.cache_bytes) are kept.
func (c *Config) memory(serving bool) memoryPlan {
	b := int64(c.MemoryBudget)
	p := memoryPlan{
		Budget:    b,
		GoLimit:   b - b/goLimitMargin,
		GCPercent: gcPercent,
		Decisions: b / shareDecisions,
		Records:   b / shareRecords,
		Tail:      b / shareTail,
	}
	if !serving {
		p.Decisions, p.Tail = 0, 0
		p.Records = b / offlineShareRecords
	}
	if c.Ingest.DecisionCacheBytes > 0 {
		p.Decisions = c.Ingest.DecisionCacheBytes
	}
	if c.Privacy != nil {
		p.Keys = cmpOr(c.Privacy.CacheBytes, b/shareKeys)
	}
	return p
}

func cmpOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// validateMemory checks memory_budget and the cache sizes set beside it.
func (c *Config) validateMemory() []error {
	var errs []error
	b := int64(c.MemoryBudget)
	if b < minMemoryBudget {
		return []error{fmt.Errorf("memory_budget: %s is below the smallest budget, %s", bytesize.Size(b), bytesize.Size(minMemoryBudget))}
	}
	explicit := c.Ingest.DecisionCacheBytes
	if c.Privacy != nil {
		explicit += c.Privacy.CacheBytes
	}
	if explicit > b/2 {
		errs = append(errs, fmt.Errorf("memory_budget: the caches sized explicitly (ingest.decision_cache_bytes, privacy.cache_bytes: %s) take more than half of the budget (%s), which the Go heap needs to work in: raise memory_budget or leave them out (the budget sizes them)", bytesize.Size(explicit), bytesize.Size(b)))
	}
	return errs
}

// apply sets the Go runtime's memory limit and GC target from the plan,
// unless the environment sets them (GOMEMLIMIT, GOGC: an operator's
// override, which the runtime has already applied), and logs the plan
// (unless logger is nil).
func (p memoryPlan) apply(logger *slog.Logger) {
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
		"key_cache", bytesize.Size(p.Keys).String())
}
