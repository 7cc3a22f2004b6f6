package config

import (
	"testing"
	"time"
)

// TestOverdueConfig: each source's overdue_after, 23h5m by default, 0s
// off; the clock is the one given.
func TestOverdueConfig(t *testing.T) {
	cfg, err := loadConfig(t, "sources:\n"+
		"  - {name: reewild, kind: reewild, secrets: [x]}\n"+
		"  - {name: fast, kind: reewild, secrets: [y], overdue_after: 2h}\n"+
		"  - {name: off, kind: reewild, secrets: [z], overdue_after: 0s}\n")
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	o := cfg.Overdue(func() time.Time { return fixed })
	for src, want := range map[string]time.Duration{"reewild": 23*time.Hour + 5*time.Minute, "fast": 2 * time.Hour, "off": 0, "unknown": 23*time.Hour + 5*time.Minute} {
		if got := o.After(src); got != want {
			t.Errorf("%s: %v, want %v", src, got, want)
		}
	}
	if !o.Now().Equal(fixed) {
		t.Fatal("Now is not the clock given")
	}
	if _, err := loadConfig(t, "sources:\n  - {name: r, kind: reewild, secrets: [x], overdue_after: -1h}\n"); err == nil {
		t.Fatal("a negative overdue_after was accepted")
	}
}
