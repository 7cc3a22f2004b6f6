package retm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// Kind is the provider scheme name, as in the config's `kind: retm`.
const Kind = "retm"

// Token is one shared token RETM presents, and the merchant it was issued
// to.
type Token struct {
	// Value is the token as issued (16 to 512 bytes of visible ASCII; see
	// tokenauth.New).
	Value []byte
	// Merchant, if not empty, binds the token to one merchant: a delivery
	// authenticated by it whose business reference (RETM's
	// "business_refrence", or "business_reference") names another merchant
	// is unauthenticated. A delivery without a business reference (the
	// error webhook has none) is taken to be the token's merchant's.
	Merchant string
}

// Config configures one RETM source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// Tokens are the shared tokens currently active (rotation, or one per
	// merchant). A delivery presenting any of them, as Authorization:
	// Bearer (what RETM sends) or as the path token of POST
	// /webhooks/{source}/{token}, is authentic. At least one is required.
	Tokens []Token
	// AllowIPs, if not empty, restricts deliveries to remote addresses in
	// these prefixes (checked against the request's RemoteAddr).
	AllowIPs []netip.Prefix
	// Currency, if set, is the ISO 4217 code recorded with invoice amounts
	// (RETM's payloads do not name one). Empty records none.
	Currency string
	// Location is where RETM's zoneless timestamps ("2025-12-17 19:26:35")
	// are read. Nil means UTC.
	Location *time.Location
}

// Provider verifies and normalizes the deliveries of one RETM source. It
// implements webhook.Provider and is safe for concurrent use.
type Provider struct {
	source   string
	currency string
	loc      *time.Location
	auth     *tokenauth.Checker
	// merchants[i] is the merchant of token i ("" when unbound).
	merchants []string
	// merchantByKeyID maps a token's key id to its merchant, for Normalize
	// (which sees the Verification, not the request).
	merchantByKeyID map[string]string
}

// New returns the Provider of cfg. It fails when the source name is
// invalid, no token is configured, a token is not acceptable
// (tokenauth.New), a merchant name is longer than 256 bytes, the currency is
// not three upper-case letters, or an allow-list prefix is invalid. Only the
// tokens' digests are kept.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("retm: new provider: %w", err)
	}
	if c := cfg.Currency; c != "" && !isCurrencyCode(c) {
		return nil, fmt.Errorf("retm: new provider for source %q: currency %.16q is not an ISO 4217 code (three upper-case letters)", cfg.Source, c)
	}
	values := make([][]byte, len(cfg.Tokens))
	merchants := make([]string, len(cfg.Tokens))
	for i, t := range cfg.Tokens {
		if len(t.Merchant) > jsonfield.MaxIDLen {
			return nil, fmt.Errorf("retm: new provider for source %q: token %d: merchant longer than %d bytes", cfg.Source, i, jsonfield.MaxIDLen)
		}
		values[i], merchants[i] = t.Value, t.Merchant
	}
	auth, err := tokenauth.New(values, cfg.AllowIPs)
	if err != nil {
		return nil, fmt.Errorf("retm: new provider for source %q: %w", cfg.Source, err)
	}
	p := &Provider{
		source:          cfg.Source,
		currency:        cfg.Currency,
		loc:             cfg.Location,
		auth:            auth,
		merchants:       merchants,
		merchantByKeyID: make(map[string]string, len(merchants)),
	}
	if p.loc == nil {
		p.loc = time.UTC
	}
	for i, id := range auth.KeyIDs() {
		p.merchantByKeyID[id] = merchants[i]
	}
	return p, nil
}

func isCurrencyCode(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// Verify authenticates a delivery by its shared token (Authorization:
// Bearer, or the path token) and, when an allow-list is configured, its
// remote address. When the matching token is bound to a merchant, the
// body's business reference, where it has one, must name that merchant: this
// reads the two business-reference fields of the body and nothing else.
// RETM signs nothing, so receivedAt is not used. A failure wraps
// webhook.ErrUnauthenticated and never contains the token.
func (p *Provider) Verify(r *http.Request, body []byte, _ time.Time) (webhook.Verification, error) {
	m, err := p.auth.Check(r)
	if err != nil {
		return webhook.Verification{}, fmt.Errorf("retm: verify delivery to %q: %w", p.source, err)
	}
	if merchant := p.merchants[m.Index]; merchant != "" {
		if err := checkMerchant(body, merchant); err != nil {
			return webhook.Verification{}, fmt.Errorf("retm: verify delivery to %q: %w", p.source, err)
		}
	}
	return m.Verification, nil
}

// wireMerchant is what the merchant check reads of a body: with the same
// exact-key, last-wins rules as Normalize (jsonfield.Decoder), so that the
// reference checked is the reference recorded.
type wireMerchant struct {
	BusinessRefrence  json.RawMessage `json:"business_refrence"`
	BusinessReference json.RawMessage `json:"business_reference"`
}

var merchantDecoder = jsonfield.NewDecoder[wireMerchant]()

// checkMerchant checks that every business reference the body carries is
// merchant. A body with none (or that is not a JSON object: Normalize
// refuses it) passes.
func checkMerchant(body []byte, merchant string) error {
	var w wireMerchant
	if err := merchantDecoder.Decode(body, &w); err != nil {
		return nil
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
	}{
		{w.BusinessRefrence, "business_refrence"},
		{w.BusinessReference, "business_reference"},
	} {
		if !jsonfield.Present(f.raw) {
			continue
		}
		if ref, ok := jsonfield.ID(f.raw); !ok || ref != merchant {
			return fmt.Errorf("retm: %s %.64s is not the token's merchant %.64q: %w", f.name, f.raw, merchant, webhook.ErrUnauthenticated)
		}
	}
	return nil
}
