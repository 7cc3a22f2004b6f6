package reap

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/sigcheck"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: reap`.
	Kind = "reap"
	// SignatureHeader carries the base64 RSA-SHA512 signature. Reap spells
	// it reap-signature; header names are case-insensitive and this is
	// the canonical form.
	SignatureHeader = signer.ReapHeader
	// SchemeRaw is the verification scheme recorded when the signature
	// covers the body exactly as received.
	SchemeRaw = "rsa-sha512-raw"
	// SchemeCompactJSON is the verification scheme recorded when the
	// signature covers the body's compact JSON form (CompactJSON) and not
	// the body as received.
	SchemeCompactJSON = "rsa-sha512-compact-json"
)

// Bounds on the configured keys. The lower one is security; the upper one
// and MaxKeys bound the cost of a delivery with a bad signature, which is at
// most 2 × MaxKeys RSA verifications (about 0.1–0.5 ms each at 4096 bits).
const (
	MinKeyBits = 2048
	MaxKeyBits = 8192
	MaxKeys    = 8
)

// Config configures one Reap source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// PublicKeys are Reap's RSA public keys currently active for this
	// source (ParsePublicKeys reads them from PEM). A signature made with
	// any of them verifies, so a rotation can overlap. At least one and at
	// most MaxKeys are required, each of MinKeyBits to MaxKeyBits bits, and
	// no key twice.
	PublicKeys []*rsa.PublicKey
}

// Provider verifies and normalizes the deliveries of one Reap source. It
// implements webhook.Provider and is safe for concurrent use: it is never
// modified after New.
type Provider struct {
	source string
	keys   []key
	// maxSigLen is the largest key size in bytes: no signature is longer.
	maxSigLen int
}

// key is one active public key.
type key struct {
	pub *rsa.PublicKey
	id  string // KeyID(pub)
}

// New returns the Provider of cfg. It fails when the source name is
// invalid, no key or more than MaxKeys are configured, a key is nil, of an
// unsupported size or exponent, or given twice. The keys are copied.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("reap: new provider: %w", err)
	}
	switch n := len(cfg.PublicKeys); {
	case n == 0:
		return nil, fmt.Errorf("reap: new provider for source %q: no public key configured", cfg.Source)
	case n > MaxKeys:
		return nil, fmt.Errorf("reap: new provider for source %q: %d public keys configured, at most %d are allowed", cfg.Source, n, MaxKeys)
	}
	p := &Provider{source: cfg.Source, keys: make([]key, 0, len(cfg.PublicKeys))}
	for i, pub := range cfg.PublicKeys {
		if err := checkKey(pub); err != nil {
			return nil, fmt.Errorf("reap: new provider for source %q: public key %d: %w", cfg.Source, i, err)
		}
		id, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("reap: new provider for source %q: public key %d: %w", cfg.Source, i, err)
		}
		for j, k := range p.keys {
			if k.pub.Equal(pub) {
				return nil, fmt.Errorf("reap: new provider for source %q: public key %d (%s) is the same as public key %d", cfg.Source, i, id, j)
			}
		}
		cp := &rsa.PublicKey{N: new(big.Int).Set(pub.N), E: pub.E}
		p.keys = append(p.keys, key{pub: cp, id: id})
		p.maxSigLen = max(p.maxSigLen, cp.Size())
	}
	return p, nil
}

// checkKey refuses keys crypto/rsa would refuse to verify with, keys below
// MinKeyBits and keys above MaxKeyBits.
func checkKey(pub *rsa.PublicKey) error {
	switch {
	case pub == nil || pub.N == nil:
		return errors.New("no RSA modulus")
	case pub.N.Sign() <= 0 || pub.N.Bit(0) == 0:
		return errors.New("RSA modulus is not a positive odd number")
	case pub.N.BitLen() < MinKeyBits:
		return fmt.Errorf("%d-bit RSA key: at least %d bits are required", pub.N.BitLen(), MinKeyBits)
	case pub.N.BitLen() > MaxKeyBits:
		return fmt.Errorf("%d-bit RSA key: at most %d bits are supported", pub.N.BitLen(), MaxKeyBits)
	case pub.E < 3 || pub.E%2 == 0 || pub.E > 1<<31-1:
		return fmt.Errorf("RSA public exponent %d: an odd number from 3 to 2³¹−1 is required", pub.E)
	}
	return nil
}

// KeyID returns the key id recorded for a public key: "sha256:" and the
// first 8 hex digits of the SHA-256 of the key's PKIX (SubjectPublicKeyInfo)
// DER encoding, whichever PEM form it was read from. It is what
// `openssl pkey -pubin -outform DER | sha256sum` starts with.
func KeyID(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("reap: key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:4]), nil
}

// PEM block types ParsePublicKeys accepts.
const (
	pemPKIX  = "PUBLIC KEY"     // SubjectPublicKeyInfo (openssl's default)
	pemPKCS1 = "RSA PUBLIC KEY" // PKCS #1 RSAPublicKey
)

// ParsePublicKeys reads RSA public keys from PEM text: every block of every
// input, in order, each a "PUBLIC KEY" (PKIX, as Reap publishes them) or an
// "RSA PUBLIC KEY" (PKCS #1) block. Text around the blocks is ignored.
// It fails, naming the input and block, when an input holds no PEM block, a
// block is malformed or of another type (a private key or a certificate
// block is refused with a hint), or a PKIX block holds a key that is not
// RSA. Errors never repeat key material.
func ParsePublicKeys(pemData ...[]byte) ([]*rsa.PublicKey, error) {
	var keys []*rsa.PublicKey
	for i, data := range pemData {
		rest := data
		for n := 1; ; n++ {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				if bytes.Contains(rest, []byte("-----BEGIN")) {
					hint := ""
					if bytes.Contains(rest, []byte(`\n`)) {
						hint = ` (it holds "\n" escapes where line breaks belong)`
					}
					return nil, fmt.Errorf("reap: parse public keys: input %d, block %d: malformed PEM block%s", i, n, hint)
				}
				if n == 1 {
					return nil, fmt.Errorf("reap: parse public keys: input %d holds no PEM block", i)
				}
				break
			}
			pub, err := parsePublicKeyBlock(block)
			if err != nil {
				return nil, fmt.Errorf("reap: parse public keys: input %d, block %d: %w", i, n, err)
			}
			keys = append(keys, pub)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("reap: parse public keys: no input")
	}
	return keys, nil
}

func parsePublicKeyBlock(block *pem.Block) (*rsa.PublicKey, error) {
	if len(block.Headers) > 0 {
		return nil, fmt.Errorf("%q block: encrypted or annotated PEM blocks (with headers) are not supported", block.Type)
	}
	switch block.Type {
	case pemPKIX:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%q block: %w", block.Type, err)
		}
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%q block: a %T, not an RSA public key", block.Type, k)
		}
		return pub, nil
	case pemPKCS1:
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%q block: %w", block.Type, err)
		}
		return pub, nil
	case "CERTIFICATE":
		return nil, fmt.Errorf("%q block: configure the public key itself (openssl x509 -pubkey -noout), not a certificate", block.Type)
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("%q block: a private key; configure Reap's public key", block.Type)
		}
		return nil, fmt.Errorf("%q block: want %q or %q", block.Type, pemPKIX, pemPKCS1)
	}
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// The header Verify reads, and the errors of Verify, all wrapping
// webhook.ErrUnauthenticated. They never carry the header's value.
var (
	signature             = sigcheck.NewHeader(Kind, SignatureHeader)
	errMalformedSignature = fmt.Errorf("reap: verify: %s is not base64: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSignatureSize      = fmt.Errorf("reap: verify: %s is not the size of any active key's signatures: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSignatureMismatch  = fmt.Errorf("reap: verify: signature matches no active key over the raw body or its compact JSON form: %w", webhook.ErrUnauthenticated)
)

// Verify checks the reap-signature header: an RSA-SHA512 PKCS #1 v1.5
// signature, base64 (standard or URL-safe alphabet, padded or not), by any
// active key, first over the raw body (Scheme SchemeRaw), then over its
// compact JSON form as CompactJSON computes it (Scheme SchemeCompactJSON).
// The second check is skipped when the body has no compact form or already
// is it. The KeyID is that of the key that matched. Reap's scheme has no
// timestamp, so receivedAt is not used: replays are answered as duplicates
// by the aggregate.
//
// Only keys whose size is the signature's length are tried, so a delivery
// costs at most two SHA-512 hashes of the body, one CompactJSON pass and
// 2 × MaxKeys RSA verifications.
func (p *Provider) Verify(r *http.Request, body []byte, _ time.Time) (webhook.Verification, error) {
	sig, err := p.readSignature(r.Header)
	if err != nil {
		return webhook.Verification{}, err
	}
	sized := false
	for _, k := range p.keys {
		if k.pub.Size() == len(sig) {
			sized = true
			break
		}
	}
	if !sized {
		return webhook.Verification{}, errSignatureSize
	}
	if v, ok := p.verifyOver(body, sig, SchemeRaw); ok {
		return v, nil
	}
	compact, err := CompactJSON(body)
	if err != nil || bytes.Equal(compact, body) {
		return webhook.Verification{}, errSignatureMismatch
	}
	if v, ok := p.verifyOver(compact, sig, SchemeCompactJSON); ok {
		return v, nil
	}
	return webhook.Verification{}, errSignatureMismatch
}

// verifyOver reports whether sig is the signature of msg by an active key
// of sig's size.
func (p *Provider) verifyOver(msg, sig []byte, scheme string) (webhook.Verification, bool) {
	digest := sha512.Sum512(msg)
	for _, k := range p.keys {
		if k.pub.Size() != len(sig) {
			continue
		}
		if rsa.VerifyPKCS1v15(k.pub, crypto.SHA512, digest[:], sig) == nil {
			return webhook.Verification{Scheme: scheme, KeyID: k.id}, true
		}
	}
	return webhook.Verification{}, false
}

// The base64 encodings a signature may come in. Strict: the unused bits of
// the last character must be zero, so one signature has one spelling per
// encoding.
var (
	paddedEncodings   = []*base64.Encoding{base64.StdEncoding.Strict(), base64.URLEncoding.Strict()}
	unpaddedEncodings = []*base64.Encoding{base64.RawStdEncoding.Strict(), base64.RawURLEncoding.Strict()}
)

// readSignature decodes the request's one signature header: base64 of at
// most the longest active key's signature size, in the standard or
// URL-safe alphabet, padded or not, ignoring surrounding spaces.
func (p *Provider) readSignature(h http.Header) ([]byte, error) {
	v, err := signature.Value(h)
	if err != nil {
		return nil, err
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > base64.StdEncoding.EncodedLen(p.maxSigLen) {
		return nil, errMalformedSignature
	}
	encs := unpaddedEncodings
	if strings.HasSuffix(v, "=") {
		encs = paddedEncodings
	}
	for _, enc := range encs {
		sig, err := enc.DecodeString(v)
		if err == nil && len(sig) > 0 {
			return sig, nil
		}
	}
	return nil, errMalformedSignature
}

// Sign returns the reap-signature value of body under key, as Reap makes
// it: the standard base64 of the RSA-SHA512 PKCS #1 v1.5 signature of the
// bytes given (sign the CompactJSON form to sign as Reap's documentation
// describes). It is signer.Reap; receiptctl and tests use it to send
// signed deliveries.
func Sign(key *rsa.PrivateKey, body []byte) (string, error) { return signer.Reap(key, body) }
