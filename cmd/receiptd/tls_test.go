package main_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// selfSigned makes a self-signed P-256 certificate for 127.0.0.1 and
// localhost, valid for an hour, and writes it and its key as PEM files in
// dir (names prefixed by name). It returns the files and the certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "receiptd test " + name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeAtomically(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomically(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile, cert
}

// writeAtomically replaces path with data by a rename, as a certificate
// manager would.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedCert returns the certificate a TLS handshake with addr presents.
func servedCert(t *testing.T, addr string, nextProto string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{nextProto}}) //nolint:gosec // reading what is served
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestTLS (issue 12, item 7): with tls: cert_file and key_file both
// listeners speak TLS only (HTTPS and gRPC over TLS; plain requests are
// refused), webhooks, REST and the console work over it, the console's
// cookie is Secure, and SIGHUP swaps in a renewed certificate without a
// restart, keeping the old one when the new files are bad.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, certA := selfSigned(t, dir, "server")
	s := startServer(t, t.TempDir(), reewildConfig()+operatorAccess()+fmt.Sprintf("console: {enabled: true}\ntls: {cert_file: %q, key_file: %q}\n", certFile, keyFile), "E2E_REEWILD_SECRET="+e2eSecret)

	pool := x509.NewCertPool()
	pool.AddCert(certA)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + s.httpAddr

	// A webhook and a query over HTTPS (HTTP/2).
	body := []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"tls-1","subTotal":1}}`)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/reewild", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Reewild-Signature", sign(body))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("webhook over HTTPS: %d %s", resp.StatusCode, resp.Proto)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+e2eOperatorKey)
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("REST over HTTPS: %d", resp.StatusCode)
	}
	// Plain HTTP is refused.
	if resp, err := http.Get("http://" + s.httpAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
		}
	}
	// The console's cookie is Secure.
	resp, err = client.PostForm(base+"/ui/login", url.Values{"key": {e2eOperatorKey}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly {
		t.Errorf("console sign-in over HTTPS: %d, cookies %v, want one Secure HttpOnly cookie", resp.StatusCode, cs)
	}

	// gRPC over TLS; plain gRPC is refused.
	tlsConn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer tlsConn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(tlsConn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("gRPC over TLS: %v", err)
	}
	plain, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	if _, err := healthpb.NewHealthClient(plain).Check(pctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("plain gRPC to the TLS listener answered")
	}
	// The admin CLI over TLS, trusting the certificate.
	if out, stderr, code := runCLI(t, "audit", "--server", s.grpcAddr, "--ca-file", certFile, "--api-key", e2eOperatorKey); code != 0 || !strings.Contains(out, "clean") {
		t.Errorf("receiptd audit --ca-file over TLS: exit %d\n%s%s", code, out, stderr)
	}

	// SIGHUP: a renewed certificate is served by both listeners, without a
	// restart.
	_, _, certB := selfSigned(t, dir, "server")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ name, addr, proto string }{{"http", s.httpAddr, "http/1.1"}, {"grpc", s.grpcAddr, "h2"}} {
		deadline := time.Now().Add(10 * time.Second)
		for !servedCert(t, l.addr, l.proto).Equal(certB) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still the old certificate 10 s after SIGHUP", l.name)
			}
			time.Sleep(20 * time.Millisecond) // poll: the reload runs in the server
		}
	}
	// A bad pair on SIGHUP: the server says so and keeps serving B.
	writeAtomically(t, certFile, []byte("not a certificate"))
	n := strings.Count(s.logs.String(), "not reloaded")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Count(s.logs.String(), "not reloaded") == n; {
		if time.Now().After(deadline) {
			t.Fatal("no log line for a failed reload")
		}
		time.Sleep(20 * time.Millisecond) // poll the log
	}
	if !servedCert(t, s.httpAddr, "http/1.1").Equal(certB) {
		t.Error("a failed reload changed the certificate")
	}
	raw, _ := os.ReadFile(keyFile)
	if block, _ := pem.Decode(raw); block == nil || strings.Contains(s.logs.String(), string(raw)) {
		t.Error("the key appears in the logs")
	}
	if !strings.Contains(s.logs.String(), "TLS certificate reloaded") {
		t.Errorf("no log line for the reload:\n%s", s.logs)
	}
}

// TestBehindTLSProxy (issue 12, item 7): receiptd never terminated TLS, so
// the console's session cookie was never Secure. With tls.behind_proxy
// (clients reach it over HTTPS through a proxy) it is, on plain HTTP.
func TestBehindTLSProxy(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig()+operatorAccess()+"console: {enabled: true}\ntls: {behind_proxy: true}\n", "E2E_REEWILD_SECRET="+e2eSecret)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(s.url("/ui/login"), url.Values{"key": {e2eOperatorKey}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("console sign-in behind a TLS proxy: %d, cookies %v, want one Secure cookie", resp.StatusCode, cs)
	}
}
