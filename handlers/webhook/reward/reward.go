package reward

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// Kind is the provider scheme name, as in the config's `kind: reward`.
const Kind = "reward"

// The event types Reward sends (the envelope's "type").
const (
	// EventTriggerCreated: a trigger event was created for a user.
	EventTriggerCreated = "trigger_event.created"
	// EventCreditIssued: credit points were issued to a user.
	EventCreditIssued = "balance.credit_points_issued"
)

// Config configures one Reward source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// Tokens are the shared tokens currently active, as bytes. A delivery
	// presenting any of them (Authorization: Bearer, or the path token of
	// POST /webhooks/{source}/{token}) is authentic, so a rotation can
	// overlap. At least one is required; each must be 16 to 512 bytes of
	// visible ASCII (see tokenauth.New).
	Tokens [][]byte
	// AllowIPs, if not empty, restricts deliveries to remote addresses in
	// these prefixes (checked against the request's RemoteAddr).
	AllowIPs []netip.Prefix
	// BalanceSource is the source whose user id namespace Reward's credits
	// add to (aggregate.PointsCredited.BalanceSource): set it when the
	// Reward account shares another source's user ids. Empty means Source
	// itself. It must be a valid source name when set.
	BalanceSource string
}

// Provider verifies and normalizes the deliveries of one Reward source. It
// implements webhook.Provider and is safe for concurrent use.
type Provider struct {
	source        string
	balanceSource string
	auth          *tokenauth.Checker
}

// New returns the Provider of cfg. It fails when the source name or the
// balance source is invalid, no token is configured, a token is not
// acceptable (tokenauth.New) or an allow-list prefix is invalid. Only the
// tokens' digests are kept.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("reward: new provider: %w", err)
	}
	balanceSource := cfg.BalanceSource
	if balanceSource == "" {
		balanceSource = cfg.Source
	} else if err := webhook.CheckSourceName(balanceSource); err != nil {
		return nil, fmt.Errorf("reward: new provider for source %q: balance source: %w", cfg.Source, err)
	}
	auth, err := tokenauth.New(cfg.Tokens, cfg.AllowIPs)
	if err != nil {
		return nil, fmt.Errorf("reward: new provider for source %q: %w", cfg.Source, err)
	}
	return &Provider{source: cfg.Source, balanceSource: balanceSource, auth: auth}, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// Verify authenticates a delivery by its shared token (Authorization:
// Bearer, or the path token) and, when an allow-list is configured, its
// remote address. Reward signs nothing, so the body and receivedAt are not
// used: replays are answered as duplicates by the aggregate (dedupe on the
// envelope id, and on the transaction id for credits). A failure wraps
// webhook.ErrUnauthenticated and never contains the token.
func (p *Provider) Verify(r *http.Request, _ []byte, _ time.Time) (webhook.Verification, error) {
	m, err := p.auth.Check(r)
	if err != nil {
		return webhook.Verification{}, fmt.Errorf("reward: verify delivery to %q: %w", p.source, err)
	}
	return m.Verification, nil
}
