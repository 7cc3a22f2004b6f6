package config

import (
	"strings"
	"testing"

	"github.com/receiptd/receiptd/internal/membudget"
)

// TestMemoryBudgetConfig: memory_budget's default, the plan it asks for
// (the shares themselves are internal/membudget's test), the cache sizes
// set beside it, and the mistakes the config refuses.
func TestMemoryBudgetConfig(t *testing.T) {
	cfg, err := loadConfig(t, "sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryBudget != membudget.Default {
		t.Fatalf("default budget %d, want %d", cfg.MemoryBudget, membudget.Default)
	}
	if got, want := cfg.Memory(true), membudget.New(membudget.Request{Budget: membudget.Default, Serving: true}); got != want {
		t.Errorf("serve: %+v, want %+v", got, want)
	}
	if got, want := cfg.Memory(false), membudget.New(membudget.Request{Budget: membudget.Default}); got != want {
		t.Errorf("offline: %+v, want %+v", got, want)
	}
	cfg, err = loadConfig(t, "memory_budget: 1GiB\nprivacy: {key: x}\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Memory(true); p.Budget != 1<<30 || p.Keys == 0 {
		t.Errorf("1GiB with privacy: %+v", p)
	}
	// Sizes set explicitly are kept.
	cfg, err = loadConfig(t, "memory_budget: 512MiB\ningest: {decision_cache_bytes: 1048576}\nprivacy: {key: x, cache_bytes: 2097152}\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Memory(true); p.Decisions != 1<<20 || p.Keys != 2<<20 || p.Budget != 512<<20 {
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
