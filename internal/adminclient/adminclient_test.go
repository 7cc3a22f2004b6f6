package adminclient

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

// TestFlags: the TLS and key flags go with --server only; the key is sent
// as a bearer credential with every call; a CA file that is missing or
// holds no certificate is refused before anything is dialled.
func TestFlags(t *testing.T) {
	if err := (&Flags{APIKey: "k"}).Check(); err == nil || !strings.Contains(err.Error(), "go with --server") {
		t.Errorf("--api-key without --server: %v", err)
	}
	if err := (&Flags{Server: "127.0.0.1:1", TLS: true}).Check(); err != nil {
		t.Errorf("--tls with --server: %v", err)
	}
	t.Setenv("ADMINCLIENT_TEST_KEY", "the-key")
	conn, withAuth, err := (&Flags{Server: "127.0.0.1:1", APIKey: "env:ADMINCLIENT_TEST_KEY"}).Dial()
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	md, _ := metadata.FromOutgoingContext(withAuth(context.Background()))
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer the-key" {
		t.Errorf("authorization %q", got)
	}
	conn, withAuth, err = (&Flags{Server: "127.0.0.1:1"}).Dial()
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, ok := metadata.FromOutgoingContext(withAuth(context.Background())); ok {
		t.Error("metadata without a key")
	}
	if _, _, err := (&Flags{Server: "127.0.0.1:1", APIKey: "env:ADMINCLIENT_TEST_UNSET"}).Dial(); err == nil || !strings.Contains(err.Error(), "--api-key") {
		t.Errorf("an unset key: %v", err)
	}
	pem := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(pem, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&Flags{Server: "127.0.0.1:1", CAFile: pem}).Dial(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
	if _, _, err := (&Flags{Server: "127.0.0.1:1", CAFile: pem + ".missing"}).Dial(); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("a missing CA file: %v", err)
	}
}
