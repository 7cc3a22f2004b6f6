package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemPair writes a self-signed certificate for the name "receiptd.example"
// only (not 127.0.0.1) and its key into dir.
func pemPair(t *testing.T, dir string) TLSConfig {
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
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c := TLSConfig{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}
	os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return c
}

// TestSelfClient: the console's client for "Send test event" reaches this
// server's HTTPS listener by address although the certificate names
// another host, and refuses any other certificate.
func TestSelfClient(t *testing.T) {
	mine, err := newCertReloader(pemPair(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newCertReloader(pemPair(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(r *certReloader) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), TLSConfig: r.serverConfig()}
		go srv.ServeTLS(l, "", "")
		t.Cleanup(func() { srv.Close() })
		return "https://" + l.Addr().String()
	}
	c := mine.selfClient()
	if resp, err := c.Get(serve(mine)); err != nil {
		t.Errorf("own listener: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := c.Get(serve(other)); err == nil || !strings.Contains(err.Error(), "other than this server's") {
		t.Errorf("a listener with another certificate: %v, want refused", err)
	}
	// A bad pair neither starts nor replaces the one in use.
	bad := TLSConfig{CertFile: mine.certFile, KeyFile: other.keyFile}
	if _, err := newCertReloader(bad); err == nil {
		t.Error("a certificate with another's key was loaded")
	}
	before := mine.cur.Load()
	os.WriteFile(mine.certFile, []byte("garbage"), 0o600)
	if err := mine.reload(); err == nil || mine.cur.Load() != before {
		t.Errorf("reload of garbage: %v, certificate replaced: %v", err, mine.cur.Load() != before)
	}
	if _, err := loadConfig(t, "tls: {cert_file: x}\n"); err == nil || !strings.Contains(err.Error(), "both cert_file and key_file") {
		t.Errorf("cert_file without key_file: %v", err)
	}
}
