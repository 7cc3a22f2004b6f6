package config

import (
	"strings"
	"testing"
	"time"
)

// TestDestinationsConfig: a destination needs a name, an http(s) URL and a
// Standard Webhooks secret (literal, env: or file:), known kinds and
// sources; its retry policy gets defaults.
func TestDestinationsConfig(t *testing.T) {
	const src = "sources:\n  - {name: reewild, kind: reewild, secrets: [s]}\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"no name", "destinations: [{url: 'http://x', secret: whsec_YWJj}]", "no name"},
		{"bad url", "destinations: [{name: a, url: 'ftp://x', secret: whsec_YWJj}]", "not an http(s) URL"},
		{"no secret", "destinations: [{name: a, url: 'http://x'}]", "no secret"},
		{"bad secret", "destinations: [{name: a, url: 'http://x', secret: 'whsec_!!'}]", "secret"},
		{"unknown kind", "destinations: [{name: a, url: 'http://x', secret: whsec_YWJj, kinds: [receipt.lost.v1]}]", "unknown kind"},
		{"unknown source", "destinations: [{name: a, url: 'http://x', secret: whsec_YWJj, sources: [nope]}]", "unknown source"},
		{"twice", "destinations: [{name: a, url: 'http://x', secret: whsec_YWJj}, {name: a, url: 'http://y', secret: whsec_YWJj}]", "duplicate"},
		{"jitter", "destinations: [{name: a, url: 'http://x', secret: whsec_YWJj, retry: {jitter: 2}}]", "jitter"},
		{"initial above max", "destinations: [{name: a, url: 'http://x', secret: whsec_YWJj, retry: {initial: 1m, max: 1s}}]", "initial"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadConfig(t, src+c.yaml+"\n"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to say %q", err, c.want)
			}
		})
	}
	t.Setenv("TEST_DEST_SECRET", "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4\n")
	cfg, err := loadConfig(t, src+`destinations:
  - {name: ledger, url: "https://ledger.example/hooks", secret: env:TEST_DEST_SECRET, kinds: [receipt.completed.v1], sources: [reewild]}
  - {name: crm, url: "http://127.0.0.1:9000/h", secret: whsec_YWJj, timeout: 2s, retry: {schedule: [1s, 10s], jitter: 0, pause_after: 0, max_attempts: 5}}
`)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cfg.FeedDestinations()
	if err != nil || len(ds) != 2 {
		t.Fatalf("%v %v", ds, err)
	}
	if d := ds[0]; string(d.Secret) != "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4" || d.Retry.PauseAfter != defaultPauseAfter || d.Retry.Jitter != 0.2 || d.Timeout != 0 {
		t.Errorf("ledger: %+v", d)
	}
	if d := ds[1]; d.Timeout != 2*time.Second || d.Retry.PauseAfter != 0 || d.Retry.Jitter != 0 || d.Retry.MaxAttempts != 5 || len(d.Retry.Schedule) != 2 {
		t.Errorf("crm: %+v", d)
	}
}

// TestExampleDestinationsConfig: examples/feed/destinations.yaml loads as
// documented.
func TestExampleDestinationsConfig(t *testing.T) {
	t.Setenv("REEWILD_SECRET", "dev-secret")
	t.Setenv("FEED_SECRET", "whsec_ZXhhbXBsZSBmZWVkIGtleQ==")
	cfg := Config{File: "../examples/feed/destinations.yaml"}
	if err := cfg.Load(); err != nil {
		t.Fatal(err)
	}
	ds, err := cfg.FeedDestinations()
	if err != nil || len(ds) != 2 || ds[1].Retry.MaxAttempts != 10 || len(ds[1].Kinds) != 2 {
		t.Fatalf("%+v %v", ds, err)
	}
}
