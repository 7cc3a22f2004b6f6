package tlsreload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/receiptd/receiptd/internal/tlsreload"
)

// pemPair writes a self-signed certificate for the name "receiptd.example"
// only (not 127.0.0.1) and its key into dir.
func pemPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "receiptd.example"},
		DNSNames: []string{"receiptd.example"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// serve serves HTTPS with r's certificate on a loopback port.
func serve(t *testing.T, r *tlsreload.Reloader) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), TLSConfig: r.ServerConfig()}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + l.Addr().String()
}

// TestSelfClient: the client for the server's own listener reaches it by
// address although the certificate names another host, and refuses any
// other certificate. A bad pair neither loads nor replaces the one in use.
func TestSelfClient(t *testing.T) {
	mineCert, mineKey := pemPair(t, t.TempDir())
	mine, err := tlsreload.New(mineCert, mineKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := pemPair(t, t.TempDir())
	other, err := tlsreload.New(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	c := mine.SelfClient()
	if resp, err := c.Get(serve(t, mine)); err != nil {
		t.Errorf("own listener: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := c.Get(serve(t, other)); err == nil || !strings.Contains(err.Error(), "other than this server's") {
		t.Errorf("a listener with another certificate: %v, want refused", err)
	}
	if _, err := tlsreload.New(mineCert, otherKey); err == nil {
		t.Error("a certificate with another's key was loaded")
	}
	before, _ := mine.GetCertificate(nil)
	if err := os.WriteFile(mineCert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	after, _ := mine.GetCertificate(nil)
	if err := mine.Reload(); err == nil || after != before {
		t.Errorf("reload of garbage: %v, certificate replaced: %v", err, after != before)
	}
}

// TestReloadOn: a signal swaps in the pair now in the files, and the log
// says so without the key; a nil Reloader logs that there is nothing to
// reload.
func TestReloadOn(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := pemPair(t, dir)
	r, err := tlsreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.GetCertificate(nil)
	pemPair(t, dir) // a renewed pair in the same files
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, rl := range []*tlsreload.Reloader{r, nil} {
		var logs bytes.Buffer // read once ReloadOn has returned
		sig, done := make(chan os.Signal), make(chan struct{})
		finished := make(chan struct{})
		go func() { rl.ReloadOn(sig, done, slog.New(slog.NewTextHandler(&logs, nil))); close(finished) }()
		sig <- syscall.SIGHUP
		close(done)
		<-finished
		want := "TLS certificate reloaded"
		if rl == nil {
			want = "nothing to reload"
		}
		if !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), string(keyPEM)) {
			t.Errorf("log %q, want %q and no key", logs.String(), want)
		}
	}
	if after, _ := r.GetCertificate(nil); after == before {
		t.Error("the certificate was not replaced")
	}
}
