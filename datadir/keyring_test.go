package datadir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/privacy"
)

// TestPrivacyConfig: the privacy section needs exactly one of key and
// keys; a key that is not 32 bytes is refused when the keyring opens, and
// a good one opens a key file in the data dir (or key_file).
// TestOpenKeyring: a good key opens a key file in the data dir; a key that
// is not 32 bytes is refused, without its value; without the section there
// is no keyring.
func TestOpenKeyring(t *testing.T) {
	t.Setenv("TEST_PRIVACY_KEK", strings.Repeat("ab", 32))
	t.Setenv("TEST_PRIVACY_OLD", strings.Repeat("cd", 32))
	cfg := config.Config{File: filepath.Join(t.TempDir(), "config.yaml")}
	if err := os.WriteFile(cfg.File, []byte("privacy: {keys: [env:TEST_PRIVACY_KEK, env:TEST_PRIVACY_OLD]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Load(); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	r, err := OpenKeyring(context.Background(), cfg, nil, cfg.Memory(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SealKey(context.Background(), privacy.Subject{Source: "reewild", ID: "u"}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "keys.db")); err != nil {
		t.Errorf("key file: %v", err)
	}

	t.Setenv("TEST_PRIVACY_KEK", "not a key")
	_, err = OpenKeyring(context.Background(), cfg, nil, cfg.Memory(true))
	if !errors.Is(err, privacy.ErrBadKEK) || strings.Contains(err.Error(), "not a key") {
		t.Errorf("a bad key: %v, want ErrBadKEK without the value", err)
	}
	// Without the section: no keyring, nothing sealed.
	cfg.Privacy = nil
	if r, err := OpenKeyring(context.Background(), cfg, nil, cfg.Memory(true)); r != nil || err != nil {
		t.Errorf("without privacy: %v %v", r, err)
	}
}
