package reewild

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: reewild`.
	Kind = "reewild"
	// SignatureHeader carries the HMAC-SHA256 of the raw body.
	SignatureHeader = "X-Reewild-Signature"
	// Scheme is the verification scheme recorded in the event metadata.
	Scheme = "hmac-sha256"
)

// Config configures one Reewild source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// Secrets are the webhook secrets currently active, as bytes (the
	// secret string as Reewild issued it, not decoded). A signature made
	// with any of them verifies, so a rotation can overlap. At least one is
	// required and none may be empty.
	Secrets [][]byte
}

// Provider verifies and normalizes the deliveries of one Reewild source. It
// implements webhook.Provider and is safe for concurrent use.
type Provider struct {
	source string
	keys   []*key
}

// key is one active secret.
type key struct {
	id   string    // webhook.KeyID of the secret
	macs sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the secret
}

// New returns the Provider of cfg. It fails when the source name is invalid,
// no secret is configured, or a secret is empty. The secrets are copied.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("reewild: new provider: %w", err)
	}
	if len(cfg.Secrets) == 0 {
		return nil, fmt.Errorf("reewild: new provider for source %q: no secret configured", cfg.Source)
	}
	p := &Provider{source: cfg.Source, keys: make([]*key, 0, len(cfg.Secrets))}
	for i, s := range cfg.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("reewild: new provider for source %q: secret %d is empty", cfg.Source, i)
		}
		secret := append([]byte(nil), s...)
		k := &key{id: webhook.KeyID(secret)}
		k.macs.New = func() any { return hmac.New(sha256.New, secret) }
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// Errors of Verify, all wrapping webhook.ErrUnauthenticated. They never
// carry the header's value.
var (
	errNoSignature        = fmt.Errorf("reewild: verify: no %s header: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSeveralSignatures  = fmt.Errorf("reewild: verify: more than one %s header: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errMalformedSignature = fmt.Errorf("reewild: verify: %s is not a hex or base64 HMAC-SHA256: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSignatureMismatch  = fmt.Errorf("reewild: verify: signature matches no active secret: %w", webhook.ErrUnauthenticated)
)

// Verify checks X-Reewild-Signature against the HMAC-SHA256 of the raw body
// under each active secret, in constant time. The signature may be hex (the
// default, either case), standard or URL-safe base64 (padded or not), and
// may carry a "sha256=" prefix. Reewild's scheme has no timestamp, so
// receivedAt is not used: replays are answered as duplicates by the
// aggregate.
func (p *Provider) Verify(r *http.Request, body []byte, _ time.Time) (webhook.Verification, error) {
	values := r.Header.Values(SignatureHeader)
	switch len(values) {
	case 0:
		return webhook.Verification{}, errNoSignature
	case 1:
	default:
		return webhook.Verification{}, errSeveralSignatures
	}
	var got [sha256.Size]byte
	if !decodeSignature(values[0], &got) {
		return webhook.Verification{}, errMalformedSignature
	}
	for _, k := range p.keys {
		if k.matches(body, got[:]) {
			return webhook.Verification{Scheme: Scheme, KeyID: k.id}, nil
		}
	}
	return webhook.Verification{}, errSignatureMismatch
}

// matches reports whether sig is the HMAC of body under k.
func (k *key) matches(body, sig []byte) bool {
	mac := k.macs.Get().(hash.Hash)
	mac.Write(body)
	var sum [sha256.Size]byte
	ok := hmac.Equal(mac.Sum(sum[:0]), sig)
	mac.Reset()
	k.macs.Put(mac)
	return ok
}

// decodeSignature decodes a signature header value into dst: hex (64
// digits) or base64 in any of its four alphabets and paddings (43 or 44
// characters), after an optional "sha256=" prefix (any case).
func decodeSignature(v string, dst *[sha256.Size]byte) bool {
	v = strings.TrimSpace(v)
	const prefix = "sha256="
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		v = v[len(prefix):]
	}
	switch len(v) {
	case hex.EncodedLen(sha256.Size):
		n, err := hex.Decode(dst[:], []byte(v))
		return err == nil && n == sha256.Size
	case base64.StdEncoding.EncodedLen(sha256.Size):
		return decodeBase64(dst, v, base64.StdEncoding.Strict(), base64.URLEncoding.Strict())
	case base64.RawStdEncoding.EncodedLen(sha256.Size):
		return decodeBase64(dst, v, base64.RawStdEncoding.Strict(), base64.RawURLEncoding.Strict())
	default:
		return false
	}
}

// decodeBase64 decodes v into dst with the first encoding that takes it.
func decodeBase64(dst *[sha256.Size]byte, v string, encs ...*base64.Encoding) bool {
	var buf [sha256.Size + 3]byte // Decode may write up to DecodedLen bytes
	for _, enc := range encs {
		if enc.DecodedLen(len(v)) > len(buf) {
			continue
		}
		n, err := enc.Decode(buf[:], []byte(v))
		if err == nil && n == sha256.Size {
			copy(dst[:], buf[:n])
			return true
		}
	}
	return false
}

// Sign returns the lower-case hex HMAC-SHA256 of body under secret: the
// X-Reewild-Signature value Reewild sends. receiptctl and tests use it to
// send signed deliveries.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
