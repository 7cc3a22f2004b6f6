// Package tlsreload holds the certificate a server presents, read from PEM
// files and read again on demand (receiptd: on SIGHUP), so a renewed
// certificate is served without a restart.
//
// # Basics
//
//	r, err := tlsreload.New("cert.pem", "key.pem") // an error stops the start
//	srv := &http.Server{TLSConfig: r.ServerConfig()}
//	go r.ReloadOn(sighup, done, logger)
//
// Every handshake takes the pair current at that moment: a handshake sees
// the old pair or the new one, never a mix. A reload that fails (a missing
// file, a key that does not match) keeps the pair in use. Errors and log
// lines name the files, never their contents; the log describes a
// certificate by subject, names, expiry and SHA-256, never its key.
//
// SelfClient is an HTTPS client for the server's own listener reached by
// address over loopback: it trusts exactly the certificate served now.
//
// It imports only the standard library.
package tlsreload

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Reloader holds the certificate a server presents, swapped in whole on
// Reload. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// New loads the pair from certFile (the certificate with its chain) and
// keyFile (its private key), both PEM.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again; on error the certificate in use stays.
func (r *Reloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("tls: %s: %w", r.certFile, err)
		}
	}
	r.cur.Store(&c)
	return nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// ServerConfig is a server's TLS configuration: TLS 1.2 or later, the
// current certificate.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// LogAttrs describe the current certificate for a log line: subject, names,
// expiry and the SHA-256 of the certificate (public; never the key).
func (r *Reloader) LogAttrs() []any {
	leaf := r.cur.Load().Leaf
	sum := sha256.Sum256(leaf.Raw)
	return []any{"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", hex.EncodeToString(sum[:])}
}

// SelfClient is an HTTP client for the server's own HTTPS listener: it
// trusts exactly the certificate served now, whatever names it holds,
// since it dials the listener over loopback by address.
func (r *Reloader) SelfClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified below, against the one certificate this server holds,
		// instead of against names and roots.
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection pins the served certificate
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, r.cur.Load().Leaf.Raw) {
				return errors.New("tls: the listener presented a certificate other than this server's")
			}
			return nil
		},
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// ReloadOn reloads the certificate on each value from sig (SIGHUP) until
// done closes, logging the outcome. On a nil Reloader (no TLS configured)
// it logs that there is nothing to reload.
func (r *Reloader) ReloadOn(sig <-chan os.Signal, done <-chan struct{}, logger *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case <-sig:
			if r == nil {
				logger.Info("SIGHUP: nothing to reload (no tls: cert_file)")
				continue
			}
			if err := r.Reload(); err != nil {
				logger.Error("SIGHUP: TLS certificate not reloaded; the one in use stays", append([]any{"err", err}, r.LogAttrs()...)...)
				continue
			}
			logger.Info("SIGHUP: TLS certificate reloaded", r.LogAttrs()...)
		}
	}
}
