package config

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestProviders: one verifier per source; a source with nothing to verify
// with refuses to start unless insecure; bad allow_ips, time zones and
// keys name the field, and no secret.
func TestProviders(t *testing.T) {
	cfg, err := loadConfig(t, `sources:
  - {name: reewild, kind: reewild, secrets: [s1, s2]}
  - {name: reusely, kind: reusely, secrets: [s], tolerance: 10m}
  - {name: reward, kind: reward, tokens: [token-of-sixteen-bytes-or-more], allow_ips: [10.0.0.0/8, 192.0.2.7], user_namespace: reewild}
  - {name: retm, kind: retm, tokens: [token-of-sixteen-bytes-or-more], merchant: m, timezone: Europe/London}
  - {name: std, kind: standard, secrets: [whsec_YWJj]}
  - {name: dev, kind: reewild, insecure: true}
`)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := cfg.Providers(slog.New(slog.DiscardHandler))
	if err != nil || len(ps) != 6 {
		t.Fatalf("%d providers, %v", len(ps), err)
	}
	for _, c := range []struct{ name, source, want string }{
		{"no secret", "{name: a, kind: reewild}", ErrNoVerifier.Error()},
		{"no public key", "{name: a, kind: reap}", ErrNoVerifier.Error()},
		{"bad allow_ips", "{name: a, kind: reward, tokens: [token-of-sixteen-bytes-or-more], allow_ips: [nowhere]}", "allow_ips"},
		{"bad time zone", "{name: a, kind: retm, tokens: [token-of-sixteen-bytes-or-more], timezone: Mars/Olympus}", "timezone"},
		{"bad public key", "{name: a, kind: reap, public_keys: [not-a-pem-key]}", "public_keys"},
		{"unresolved secret", "{name: a, kind: reewild, secrets: ['env:CONFIG_TEST_UNSET_SECRET']}", "secrets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(t, "sources:\n  - "+c.source+"\n")
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.Providers(slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "source a") {
				t.Errorf("error %v, want it to name source a and say %q", err, c.want)
			}
			if c.want == ErrNoVerifier.Error() && !errors.Is(err, ErrNoVerifier) {
				t.Errorf("%v is not ErrNoVerifier", err)
			}
		})
	}
}
