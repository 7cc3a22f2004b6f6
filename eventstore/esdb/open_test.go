package esdb_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

func TestOpenConnectionStrings(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{})
	host := d.Addr()
	for _, url := range []string{
		"esdb://" + host + "?tls=false",
		"kurrentdb://" + host + "?tls=false",
		"kurrent://" + host + "?TLS=false&maxDiscoverAttempts=2&gossipTimeout=3",
		"esdb://admin:changeit@" + host + "?tls=false", // credentials go over TLS only; the double ignores them
	} {
		t.Run(url, func(t *testing.T) {
			s := open(t, url, esdb.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.Append(ctx, "receipt-test.open", eventstore.Any, newEvent(0)); err != nil {
				t.Fatalf("Append: %v", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	// A port nothing listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := lis.Addr().String()
	lis.Close()

	for _, tc := range []struct {
		name string
		url  string
		opts esdb.Options
		want error
	}{
		{"Scheme", "http://" + closedPort, esdb.Options{}, eventstore.ErrInvalid},
		{"Garbage", "esdb://", esdb.Options{}, eventstore.ErrInvalid},
		{"Category", "esdb://" + closedPort + "?tls=false", esdb.Options{Categories: []string{"bad-category"}}, eventstore.ErrInvalid},
		{"SystemCategory", "esdb://" + closedPort + "?tls=false", esdb.Options{Categories: []string{"$ce"}}, eventstore.ErrInvalid},
		{"Unreachable", "esdb://admin:s3cret@" + closedPort + "?tls=false", esdb.Options{CallTimeout: time.Second}, eventstore.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := esdb.Open(ctx, tc.url, tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", tc.url)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open(%s): got %v, want %v", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("Open's error shows the password: %v", err)
			}
		})
	}
}

// TestOpenTLS: a TLS connection string, with the server's CA in a file or
// with verification off.
func TestOpenTLS(t *testing.T) {
	cert, caPEM := selfSigned(t)
	d := startDouble(t, esdbdouble.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{
		"esdb://admin:changeit@" + d.Addr() + "?tlsCAFile=" + caFile,
		"esdb://" + d.Addr() + "?tls=true&tlsVerifyCert=false",
	} {
		t.Run(url, func(t *testing.T) {
			s := open(t, url, esdb.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.Append(ctx, "receipt-test.tls", eventstore.Any, newEvent(0)); err != nil {
				t.Fatalf("Append over TLS: %v", err)
			}
		})
	}
	t.Run("UnknownCA", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, "esdb://"+d.Addr(), esdb.Options{CallTimeout: time.Second})
		if err == nil {
			s.Close()
			t.Fatal("Open trusted a certificate of an unknown CA")
		}
	})
	t.Run("PlainTextToTLS", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, "esdb://"+d.Addr()+"?tls=false", esdb.Options{CallTimeout: time.Second})
		if err == nil {
			s.Close()
			t.Fatal("Open in plain text to a TLS server succeeded")
		}
	})
}

// selfSigned returns a certificate for 127.0.0.1 and its PEM, which is also
// its CA.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "esdbdouble"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
