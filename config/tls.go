package config

import "errors"

// TLSConfig is the tls: section: TLS on both listeners (--http-addr and
// --grpc-addr), or the word that a proxy terminates it.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files: the certificate (with its chain)
	// and its private key. Both or neither. They are read at start and
	// again on SIGHUP (internal/tlsreload); a reload that fails keeps the
	// certificate in use.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// BehindProxy says clients reach the HTTP listener over HTTPS through
	// a proxy that terminates TLS: the console's session cookie is then
	// marked Secure although the request reaching receiptd is plain HTTP.
	// (With cert_file the cookie is Secure anyway.)
	BehindProxy bool `yaml:"behind_proxy"`
}

// Enabled reports whether receiptd terminates TLS itself.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// SecureCookie reports whether the console's cookie must be Secure on
// every request.
func (t TLSConfig) SecureCookie() bool { return t.Enabled() || t.BehindProxy }

// Validate checks that the certificate and its key come together.
func (t TLSConfig) Validate() []error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return []error{errors.New("tls: give both cert_file and key_file, or neither")}
	}
	return nil
}
