package reewild

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/sigcheck"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: reewild`.
	Kind = "reewild"
	// SignatureHeader carries the HMAC-SHA256 of the raw body.
	SignatureHeader = signer.ReewildHeader
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
	keys   []*sigcheck.Key
}

// New returns the Provider of cfg. It fails when the source name is invalid,
// no secret is configured, or a secret is empty. The secrets are copied.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("reewild: new provider: %w", err)
	}
	keys, err := sigcheck.NewKeys(cfg.Secrets)
	if err != nil {
		return nil, fmt.Errorf("reewild: new provider for source %q: %w", cfg.Source, err)
	}
	return &Provider{source: cfg.Source, keys: keys}, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// The header Verify reads, and the errors of Verify, all wrapping
// webhook.ErrUnauthenticated. They never carry the header's value.
var (
	signature             = sigcheck.NewHeader(Kind, SignatureHeader)
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
	var got [sha256.Size]byte
	if err := readSignature(r.Header, &got); err != nil {
		return webhook.Verification{}, err
	}
	for _, k := range p.keys {
		if k.Matches(body, got[:]) {
			return webhook.Verification{Scheme: Scheme, KeyID: k.ID}, nil
		}
	}
	return webhook.Verification{}, errSignatureMismatch
}

// readSignature decodes the request's one signature header into dst: hex
// (64 digits) or base64 in any of its four alphabets and paddings (43 or
// 44 characters), after an optional "sha256=" prefix (any case).
func readSignature(h http.Header, dst *[sha256.Size]byte) error {
	v, err := signature.Value(h)
	if err != nil {
		return err
	}
	v = strings.TrimSpace(v)
	const prefix = "sha256="
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		v = v[len(prefix):]
	}
	if !sigcheck.DecodeHex(v, dst) && !sigcheck.DecodeBase64(v, dst, true) {
		return errMalformedSignature
	}
	return nil
}

// Sign returns the lower-case hex HMAC-SHA256 of body under secret: the
// X-Reewild-Signature value Reewild sends (signer.Reewild). receiptctl and
// tests use it to send signed deliveries.
func Sign(secret, body []byte) string { return signer.Reewild(secret, body) }
