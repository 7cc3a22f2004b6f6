package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/handlers/api"
)

// loadConfig writes text to a file and loads it as --config.
func loadConfig(t *testing.T, text string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{File: p}
	return cfg, cfg.Load()
}

const accessBase = "sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\naccess:\n"

func TestAccessConfigRefusesMistakes(t *testing.T) {
	hash := api.HashAPIKey("k")
	for _, c := range []struct{ name, yaml, want string }{
		{"key without name", "  api_keys: [{sha256: " + hash + ", scopes: [read:all]}]", "no name"},
		{"bad name", "  api_keys: [{name: 'a b', sha256: " + hash + ", scopes: [read:all]}]", "only letters"},
		{"duplicate name", "  api_keys: [{name: a, sha256: " + hash + ", scopes: [read:all]}, {name: a, sha256: " + api.HashAPIKey("j") + ", scopes: [admin]}]", "duplicate name"},
		{"raw key instead of hash", "  api_keys: [{name: a, sha256: rk_live_secretkey, scopes: [read:all]}]", "never the key"},
		{"no hash", "  api_keys: [{name: a, scopes: [read:all]}]", "no sha256"},
		{"no scopes", "  api_keys: [{name: a, sha256: " + hash + "}]", "no scopes"},
		{"unknown scope", "  api_keys: [{name: a, sha256: " + hash + ", scopes: [write:all]}]", `unknown scope "write:all"`},
		{"issuer missing", "  users: [{audience: r, jwks: 'file:x'}]", "no issuer"},
		{"audience missing", "  users: [{issuer: i, jwks: 'file:x'}]", "no audience"},
		{"no keys", "  users: [{issuer: i, audience: r}]", "exactly one of jwks and public_keys"},
		{"both keys", "  users: [{issuer: i, audience: r, jwks: 'file:x', public_keys: ['file:y']}]", "exactly one of jwks and public_keys"},
		{"issuer twice", "  users: [{issuer: i, audience: r, jwks: 'file:x'}, {issuer: i, audience: s, jwks: 'file:x'}]", "configured twice"},
		{"leeway", "  users: [{issuer: i, audience: r, jwks: 'file:x', leeway: 1h}]", "leeway"},
		{"unknown source", "  users: [{issuer: i, audience: r, jwks: 'file:x', sources: [reap]}]", `unknown source "reap"`},
		// Issue 12, item 10: users of two issuers do not share one id space.
		{"two issuers, no sources", "  users: [{issuer: i, audience: r, jwks: 'file:x'}, {issuer: j, audience: r, jwks: 'file:x'}]", "users[0] (i): no sources"},
		{"two issuers, one without sources", "  users: [{issuer: i, audience: r, jwks: 'file:x', sources: [reewild]}, {issuer: j, audience: r, jwks: 'file:x'}]", "users[1] (j): no sources"},
		{"negative rate", "  rate_limits: {per_user: {per_second: -1}}", "per_user"},
		{"negative burst", "  rate_limits: {ingest_per_source: {per_second: 1, burst: -1}}", "ingest_per_source"},
		{"unknown field", "  api_key: []", "api_key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(t, accessBase+c.yaml+"\n")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "rk_live_secretkey") {
				t.Errorf("the error repeats the key: %v", err)
			}
		})
	}
}

func TestNewAccessResolvesSecrets(t *testing.T) {
	dir := t.TempDir()
	hashFile := filepath.Join(dir, "h")
	if err := os.WriteFile(hashFile, []byte(api.HashAPIKey("file-key")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ACCESS_TEST_HASH", api.HashAPIKey("env-key"))
	cfg, err := loadConfig(t, accessBase+"  api_keys:\n"+
		"    - {name: lit, sha256: "+api.HashAPIKey("lit-key")+", scopes: [read:all]}\n"+
		"    - {name: env, sha256: 'env:ACCESS_TEST_HASH', scopes: [admin]}\n"+
		"    - {name: file, sha256: 'file:"+hashFile+"', scopes: [read:all, admin]}\n")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := cfg.NewAccess(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Gateway == nil || a.API == nil {
		t.Fatalf("incomplete access: %+v", a)
	}
	if a.IngestLimit != nil { // off by default, and then a nil interface
		t.Errorf("an ingest limit without ingest_per_source: %+v", a.IngestLimit)
	}
	if !strings.Contains(logs.String(), "access control on") || strings.Contains(logs.String(), "loopback clients only") {
		t.Errorf("start log: %s", logs.String())
	}
	for _, h := range []string{api.HashAPIKey("lit-key"), api.HashAPIKey("env-key"), api.HashAPIKey("file-key")} {
		if strings.Contains(logs.String(), h) {
			t.Error("a key hash was logged")
		}
	}

	// A reference that does not resolve, or a hash file holding garbage,
	// stops the start with an error naming the key, not the value.
	t.Setenv("ACCESS_TEST_HASH", "not-a-hash-but-maybe-a-key")
	if _, err := cfg.NewAccess(slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "api key env") || strings.Contains(err.Error(), "not-a-hash") {
		t.Errorf("bad env hash: %v", err)
	}
	cfg.Access.Users = []UserTokenConfig{{Issuer: "i", Audience: "r", JWKS: "file:" + filepath.Join(dir, "missing.json")}}
	t.Setenv("ACCESS_TEST_HASH", api.HashAPIKey("env-key"))
	if _, err := cfg.NewAccess(slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "users i: jwks") {
		t.Errorf("missing JWKS file: %v", err)
	}
}

func TestNewAccessLoopbackDefault(t *testing.T) {
	for _, text := range []string{
		"sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\n",
		accessBase + "  rate_limits: {per_ip: {per_second: 5}}\n",
	} {
		cfg, err := loadConfig(t, text)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		if _, err := cfg.NewAccess(slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "loopback clients only") {
			t.Errorf("no loopback-only warning: %s", logs.String())
		}
	}
}

func TestExampleAccessYAMLLoads(t *testing.T) {
	raw, err := os.ReadFile("../examples/access.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(t, string(raw))
	if err != nil {
		t.Fatalf("examples/access.yaml: %v", err)
	}
	a := cfg.Access
	if a == nil || len(a.APIKeys) != 2 || len(a.Users) != 2 || a.Users[0].JWKS == "" || len(a.Users[1].PublicKeys) != 1 {
		t.Fatalf("the example does not show each principal kind: %+v", a)
	}
	for _, k := range a.APIKeys {
		if !strings.HasPrefix(k.SHA256, "env:") && !strings.HasPrefix(k.SHA256, "file:") {
			t.Errorf("example key %s holds a literal hash: anyone could copy it", k.Name)
		}
	}
}
