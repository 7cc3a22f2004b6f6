package main

import (
	"strings"
	"testing"

	"github.com/receiptd/receiptd/internal/bytesize"
)

// TestMemoryBudgetConfig: memory_budget's default, the plan it makes for
// the server and for the offline commands, the cache sizes set beside it,
// and the mistakes the config refuses.
func TestMemoryBudgetConfig(t *testing.T) {
	cfg, err := loadConfig(t, "sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryBudget != DefaultMemoryBudget {
		t.Fatalf("default budget %d, want %d", cfg.MemoryBudget, DefaultMemoryBudget)
	}
	check := func(name string, p memoryPlan, want memoryPlan) {
		t.Helper()
		if p != want {
			t.Errorf("%s: plan %+v, want %+v", name, p, want)
		}
	}
	const b = DefaultMemoryBudget
	check("serve", cfg.memory(true), memoryPlan{Budget: b, GoLimit: b - b/goLimitMargin, GCPercent: gcPercent,
		Decisions: b / shareDecisions, Records: b / shareRecords, Tail: b / shareTail})
	check("offline", cfg.memory(false), memoryPlan{Budget: b, GoLimit: b - b/goLimitMargin, GCPercent: gcPercent,
		Records: b / offlineShareRecords})
	// The caches' shares leave most of the budget to the heap's work.
	p := cfg.memory(true)
	if caches := p.Decisions + p.Records + p.Tail + b/shareKeys; caches > b/2 {
		t.Errorf("the caches take %s of %s", bytesize.Size(caches), bytesize.Size(b))
	}

	cfg, err = loadConfig(t, "memory_budget: 1GiB\nprivacy: {key: x}\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.memory(true); p.Budget != 1<<30 || p.Records != (1<<30)/shareRecords || p.Keys != (1<<30)/shareKeys || p.GoLimit != (1<<30)-(1<<30)/goLimitMargin {
		t.Errorf("1GiB with privacy: %+v", p)
	}
	// Sizes set explicitly are kept.
	cfg, err = loadConfig(t, "memory_budget: 512MiB\ningest: {decision_cache_bytes: 1048576}\nprivacy: {key: x, cache_bytes: 2097152}\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.memory(true); p.Decisions != 1<<20 || p.Keys != 2<<20 || p.Records != (512<<20)/shareRecords {
		t.Errorf("explicit sizes: %+v", p)
	}
	if cfg, err = loadConfig(t, "memory_budget: 268435456\n"); err != nil || cfg.MemoryBudget != 256<<20 {
		t.Errorf("a budget in bytes: %d, %v", cfg.MemoryBudget, err)
	}

	for _, c := range []struct{ name, yaml, want string }{
		{"below the smallest", "memory_budget: 32MiB", "below the smallest budget, 64MiB"},
		{"unknown unit", "memory_budget: 256M", "not a number of bytes"},
		{"negative", "memory_budget: -1GiB", "negative"},
		{"not a scalar", "memory_budget: [1]", "a size is a number of bytes"},
		{"caches above half", "memory_budget: 128MiB\ningest: {decision_cache_bytes: 67108865}", "more than half of the budget (128MiB)"},
		{"caches above half with keys", "memory_budget: 64MiB\ningest: {decision_cache_bytes: 16777216}\nprivacy: {key: x, cache_bytes: 16777217}", "more than half"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadConfig(t, c.yaml+"\n"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to say %q", err, c.want)
			}
		})
	}
}
