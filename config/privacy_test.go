package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/privacy"
)

// TestPrivacyConfig: the privacy section needs exactly one of key and
// keys; a key that is not 32 bytes is refused when it is parsed, without
// its value; the key file is in the data dir unless key_file says.
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
	if keks, err := cfg.Privacy.KEKs(); err != nil || len(keks) != 2 {
		t.Fatalf("two keys: %d, %v", len(keks), err)
	}
	cfg.DataDir = t.TempDir()
	if got := cfg.KeyFile(); got != filepath.Join(cfg.DataDir, "keys.db") {
		t.Errorf("key file %s", got)
	}
	cfg.Privacy.KeyFile = "/elsewhere/keys.db"
	if got := cfg.KeyFile(); got != "/elsewhere/keys.db" {
		t.Errorf("key_file: %s", got)
	}
	t.Setenv("TEST_PRIVACY_KEK", "not a key")
	if _, err := cfg.Privacy.KEKs(); !errors.Is(err, privacy.ErrBadKEK) || strings.Contains(err.Error(), "not a key") {
		t.Errorf("a bad key: %v, want ErrBadKEK without the value", err)
	}
}
