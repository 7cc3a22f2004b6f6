package config

import (
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/api"
)

// TestConsoleConfig: the console is off by default, and on only with an
// access section holding an admin API key to sign in with; without access
// control (loopback-only queries) it refuses to start instead of opening an
// admin surface to whoever reaches the port.
func TestConsoleConfig(t *testing.T) {
	src := "sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\n"
	admin := "access:\n  api_keys:\n    - {name: ops, sha256: " + api.HashAPIKey("k") + ", scopes: [read:all, admin]}\n"
	reader := "access:\n  api_keys:\n    - {name: app, sha256: " + api.HashAPIKey("k") + ", scopes: [read:all]}\n"
	for _, c := range []struct {
		name, yaml, wantErr string
	}{
		{"off by default", src + admin, ""},
		{"on with an admin key", src + admin + "console: {enabled: true, session_ttl: 1h, sample_every: 30s}\n", ""},
		{"on without access", src + "console: {enabled: true}\n", "no API key in the access section holds the admin scope"},
		{"on with read:all keys only", src + reader + "console: {enabled: true}\n", "no API key in the access section holds the admin scope"},
		{"unknown field", src + admin + "console: {enabled: true, open: true}\n", "field open not found"},
	} {
		cfg, err := loadConfig(t, c.yaml)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		case c.name == "off by default" && cfg.Console.Enabled:
			t.Errorf("%s: enabled", c.name)
		case c.name == "on with an admin key" && (time.Duration(cfg.Console.SessionTTL) != time.Hour || time.Duration(cfg.Console.SampleEvery) != 30*time.Second):
			t.Errorf("%s: %+v", c.name, cfg.Console)
		}
	}
}
