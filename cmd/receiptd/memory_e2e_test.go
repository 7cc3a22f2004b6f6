package main_test

import (
	"strings"
	"testing"
)

// TestMemoryBudgetServer: the server sets the Go runtime's memory limit
// and GC target from memory_budget, and leaves those set by GOMEMLIMIT
// and GOGC alone.
func TestMemoryBudgetServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	base := "sources:\n  - {name: reewild, kind: reewild, secrets: [\"env:E2E_SECRET\"]}\n"
	clean := []string{"E2E_SECRET=" + e2eSecret, "GOMEMLIMIT=", "GOGC="}
	s := startServer(t, t.TempDir(), base+"memory_budget: 128MiB\n", clean...)
	m := scrape(t, s, "go_gc_gomemlimit_bytes", "go_gc_gogc_percent")
	if m["go_gc_gomemlimit_bytes"] != 120<<20 || m["go_gc_gogc_percent"] != 400 {
		t.Errorf("memory_budget 128MiB: %v, want a limit of 120 MiB (15/16) and GOGC 400", m)
	}
	if !strings.Contains(s.logs.String(), `"msg":"memory budget","budget":"128MiB"`) {
		t.Errorf("no memory budget line in the logs")
	}
	s = startServer(t, t.TempDir(), base+"memory_budget: 128MiB\n", append(clean, "GOMEMLIMIT=1GiB", "GOGC=300")...)
	m = scrape(t, s, "go_gc_gomemlimit_bytes", "go_gc_gogc_percent")
	if m["go_gc_gomemlimit_bytes"] != 1<<30 || m["go_gc_gogc_percent"] != 300 {
		t.Errorf("GOMEMLIMIT=1GiB GOGC=300: %v", m)
	}
}
