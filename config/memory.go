package config

import (
	"fmt"

	"github.com/receiptd/receiptd/internal/bytesize"
	"github.com/receiptd/receiptd/internal/membudget"
)

// Memory returns the plan of c's memory budget for `receiptd serve`
// (serving) or an offline command. Cache sizes set explicitly in the
// config (ingest.decision_cache_bytes, privacy.cache_bytes) are kept.
func (c *Config) Memory(serving bool) membudget.Plan {
	r := membudget.Request{Budget: int64(c.MemoryBudget), Serving: serving, DecisionCacheBytes: c.Ingest.DecisionCacheBytes}
	if c.Privacy != nil {
		r.Keys, r.KeyCacheBytes = true, c.Privacy.CacheBytes
	}
	return membudget.New(r)
}

// validateMemory checks memory_budget and the cache sizes set beside it.
func (c *Config) validateMemory() []error {
	b := int64(c.MemoryBudget)
	if b < membudget.Min {
		return []error{fmt.Errorf("memory_budget: %s is below the smallest budget, %s", bytesize.Size(b), bytesize.Size(membudget.Min))}
	}
	explicit := c.Ingest.DecisionCacheBytes
	if c.Privacy != nil {
		explicit += c.Privacy.CacheBytes
	}
	if explicit > membudget.MaxExplicit(b) {
		return []error{fmt.Errorf("memory_budget: the caches sized explicitly (ingest.decision_cache_bytes, privacy.cache_bytes: %s) take more than half of the budget (%s), which the Go heap needs to work in: raise memory_budget or leave them out (the budget sizes them)", bytesize.Size(explicit), bytesize.Size(b))}
	}
	return nil
}
