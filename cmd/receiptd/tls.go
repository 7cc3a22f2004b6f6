package main

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

// TLSConfig is the tls: section: TLS on both listeners (--http-addr and
// --grpc-addr), or the word that a proxy terminates it.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files: the certificate (with its chain)
	// and its private key. Both or neither. They are read at start and
	// again on SIGHUP; a reload that fails keeps the certificate in use.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// BehindProxy says clients reach the HTTP listener over HTTPS through
	// a proxy that terminates TLS: the console's session cookie is then
	// marked Secure although the request reaching receiptd is plain HTTP.
	// (With cert_file the cookie is Secure anyway.)
	BehindProxy bool `yaml:"behind_proxy"`
}

// enabled reports whether receiptd terminates TLS itself.
func (t TLSConfig) enabled() bool { return t.CertFile != "" }

// secureCookie reports whether the console's cookie must be Secure on
// every request.
func (t TLSConfig) secureCookie() bool { return t.enabled() || t.BehindProxy }

func (t TLSConfig) validate() []error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return []error{errors.New("tls: give both cert_file and key_file, or neither")}
	}
	return nil
}

// certReloader holds the certificate both listeners present, swapped in
// whole on reload: a handshake sees the old pair or the new one, never a
// mix.
type certReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// newCertReloader loads the pair once; an error stops the start.
func newCertReloader(t TLSConfig) (*certReloader, error) {
	r := &certReloader{certFile: t.CertFile, keyFile: t.KeyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the files again; on error the certificate in use stays.
// Errors name the files, never their contents.
func (r *certReloader) reload() error {
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
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// serverConfig is the TLS configuration of both listeners: TLS 1.2 or
// later, the current certificate.
func (r *certReloader) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// logAttrs describe the current certificate for the log: subject, names,
// expiry and the SHA-256 of the certificate (public; never the key).
func (r *certReloader) logAttrs() []any {
	leaf := r.cur.Load().Leaf
	sum := sha256.Sum256(leaf.Raw)
	return []any{"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", hex.EncodeToString(sum[:])}
}

// selfClient is an HTTP client for this process's own HTTPS listener (the
// console's "Send test event"): it trusts exactly the certificate the
// listener presents now, whatever names the certificate holds, since it
// dials the listener over loopback by address.
func (r *certReloader) selfClient() *http.Client {
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

// reloadOnSignal reloads the certificate on each value from sig (SIGHUP)
// until done closes, logging the outcome; without TLS it logs that there
// is nothing to reload.
func reloadOnSignal(r *certReloader, sig <-chan os.Signal, done <-chan struct{}, logger *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case <-sig:
			if r == nil {
				logger.Info("SIGHUP: nothing to reload (no tls: cert_file)")
				continue
			}
			if err := r.reload(); err != nil {
				logger.Error("SIGHUP: TLS certificate not reloaded; the one in use stays", append([]any{"err", err}, r.logAttrs()...)...)
				continue
			}
			logger.Info("SIGHUP: TLS certificate reloaded", r.logAttrs()...)
		}
	}
}
