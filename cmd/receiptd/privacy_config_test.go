package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/privacy"
)

// TestPrivacyConfig: the privacy section needs exactly one of key and
// keys; a key that is not 32 bytes is refused when the keyring opens, and
// a good one opens a key file in the data dir (or key_file).
func TestPrivacyConfig(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"no key", "privacy: {}", "privacy: needs a key"},
		{"both", "privacy: {key: a, keys: [b]}", "not both"},
		{"negative cache", "privacy: {key: a, cache_bytes: -1}", "cache_bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadConfig(t, c.yaml+"\n"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to say %q", err, c.want)
			}
		})
	}
	t.Setenv("TEST_PRIVACY_KEK", strings.Repeat("ab", 32))
	t.Setenv("TEST_PRIVACY_OLD", strings.Repeat("cd", 32))
	cfg, err := loadConfig(t, "privacy: {keys: [env:TEST_PRIVACY_KEK, env:TEST_PRIVACY_OLD]}\n")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	r, err := openKeyring(context.Background(), cfg, nil, cfg.memory(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SealKey(context.Background(), privacy.Subject{Source: "reewild", ID: "u"}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if got := cfg.keyFile(); got != filepath.Join(cfg.DataDir, "keys.db") {
		t.Errorf("key file %s", got)
	}

	t.Setenv("TEST_PRIVACY_KEK", "not a key")
	_, err = openKeyring(context.Background(), cfg, nil, cfg.memory(true))
	if !errors.Is(err, privacy.ErrBadKEK) || strings.Contains(err.Error(), "not a key") {
		t.Errorf("a bad key: %v, want ErrBadKEK without the value", err)
	}
	// Without the section: no keyring, nothing sealed.
	cfg.Privacy = nil
	if r, err := openKeyring(context.Background(), cfg, nil, cfg.memory(true)); r != nil || err != nil {
		t.Errorf("without privacy: %v %v", r, err)
	}
}
