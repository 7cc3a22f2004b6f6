package config

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/internal/secret"
)

// AccessConfig is the access: section of the config: who may query, and
// the rate limits (DESIGN.md, "Access"; examples/access.yaml). With no
// section, or one that names no API key and no token issuer, the query API
// answers loopback clients only.
type AccessConfig struct {
	// APIKeys are the backends' and operators' keys.
	APIKeys []APIKeyConfig `yaml:"api_keys"`
	// Users are the identity providers whose JWTs identify end users, who
	// read only their own data.
	Users []UserTokenConfig `yaml:"users"`
	// RateLimits of the query API and of ingest.
	RateLimits RateLimitsConfig `yaml:"rate_limits"`
}

// APIKeyConfig is one API key. The config holds only its SHA-256.
type APIKeyConfig struct {
	// Name identifies the key in logs: letters, digits, '.', '_', '-'.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the key (`printf %s KEY | sha256sum`),
	// as a literal, env:NAME or file:PATH.
	SHA256 string `yaml:"sha256"`
	// Scopes: read:all (every user's data), admin (audit, rebuild,
	// quarantine re-processing, console).
	Scopes []string `yaml:"scopes"`
}

// UserTokenConfig is one identity provider of user JWTs (RS256 or ES256).
type UserTokenConfig struct {
	// Issuer must equal the token's iss; Audience must be in its aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// JWKS is the provider's JWK Set: file:PATH (or env:NAME, or the JSON
	// itself). PublicKeys are PEM public keys or certificates instead, each
	// file:PATH, env:NAME or the PEM itself. Exactly one of the two.
	JWKS       string   `yaml:"jwks"`
	PublicKeys []string `yaml:"public_keys"`
	// UserClaim names the claim holding the user id (default sub): it must
	// equal the {user_id} a request names.
	UserClaim string `yaml:"user_claim"`
	// Leeway is the clock skew allowed on exp and nbf (default 30s, at
	// most 5m).
	Leeway Duration `yaml:"leeway"`
	// Sources are the sources whose user ids these tokens carry, the only
	// ones these users may read. Default: any, allowed for a sole issuer
	// only; with several, each must name its sources, so that one issuer's
	// "alice" cannot read another's. Two issuers may name the same source
	// only when both identify its users by the same ids.
	Sources []string `yaml:"sources"`
}

// RateLimitsConfig holds the token buckets. A limit left out gets its
// default; per_second: 0 turns it off.
type RateLimitsConfig struct {
	// PerUser is each user's (default 10/s, burst 20).
	PerUser *RateConfig `yaml:"per_user"`
	// PerAPIKey is each API key's (default 100/s, burst 200).
	PerAPIKey *RateConfig `yaml:"per_api_key"`
	// PerIP is each client address's (an IPv6 /64), counted before
	// authentication (default off: behind a gateway every REST call comes
	// from the gateway's address).
	PerIP *RateConfig `yaml:"per_ip"`
	// IngestPerSource is each webhook source's, counted before
	// verification (default off: a verified provider retries a 429, so a
	// limit only delays it).
	IngestPerSource *RateConfig `yaml:"ingest_per_source"`
}

// RateConfig is one token bucket: per_second on average, burst at once.
type RateConfig struct {
	PerSecond float64 `yaml:"per_second"`
	// Burst defaults to twice per_second (at least 1).
	Burst int `yaml:"burst"`
}

// Default rate limits.
var (
	defaultPerUser   = RateConfig{PerSecond: 10, Burst: 20}
	defaultPerAPIKey = RateConfig{PerSecond: 100, Burst: 200}
)

// Principals reports whether the section configures anyone who may query.
func (a *AccessConfig) Principals() bool {
	return a != nil && (len(a.APIKeys) > 0 || len(a.Users) > 0)
}

// validate checks the section against the query API's sources; secrets are
// resolved (and checked) when the server starts.
func (a *AccessConfig) validate(sources []string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, k := range a.APIKeys {
		where := fmt.Sprintf("access: api_keys[%d] (%s)", i, k.Name)
		switch {
		case k.Name == "":
			errs = append(errs, fmt.Errorf("access: api_keys[%d]: no name", i))
		case strings.IndexFunc(k.Name, func(r rune) bool { return !isNameRune(r) }) >= 0:
			errs = append(errs, fmt.Errorf("%s: a name may hold only letters, digits, '.', '_' and '-'", where))
		case seen[k.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[k.Name] = true
		if k.SHA256 == "" {
			errs = append(errs, fmt.Errorf("%s: no sha256", where))
		} else if !strings.HasPrefix(k.SHA256, "env:") && !strings.HasPrefix(k.SHA256, "file:") {
			if _, err := api.ParseAPIKeyHash(k.SHA256); err != nil {
				errs = append(errs, fmt.Errorf("%s: sha256: %w (the config holds the key's hash, never the key)", where, err))
			}
		}
		if len(k.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no scopes (read:all, admin, feed)", where))
		}
		for _, s := range k.Scopes {
			if !slices.Contains(api.Scopes, api.Scope(s)) {
				errs = append(errs, fmt.Errorf("%s: unknown scope %q (read:all, admin, feed)", where, s))
			}
		}
	}
	issuers := map[string]bool{}
	for i, u := range a.Users {
		where := fmt.Sprintf("access: users[%d] (%s)", i, u.Issuer)
		switch {
		case u.Issuer == "":
			errs = append(errs, fmt.Errorf("access: users[%d]: no issuer", i))
		case issuers[u.Issuer]:
			errs = append(errs, fmt.Errorf("%s: issuer configured twice", where))
		}
		issuers[u.Issuer] = true
		if u.Audience == "" {
			errs = append(errs, fmt.Errorf("%s: no audience", where))
		}
		if (u.JWKS == "") == (len(u.PublicKeys) == 0) {
			errs = append(errs, fmt.Errorf("%s: give exactly one of jwks and public_keys", where))
		}
		if time.Duration(u.Leeway) > api.MaxLeeway {
			errs = append(errs, fmt.Errorf("%s: leeway %v is more than %v", where, time.Duration(u.Leeway), api.MaxLeeway))
		}
		for _, s := range u.Sources {
			if !slices.Contains(sources, s) {
				errs = append(errs, fmt.Errorf("%s: unknown source %q", where, s))
			}
		}
		if len(a.Users) > 1 && len(u.Sources) == 0 {
			errs = append(errs, fmt.Errorf("%s: no sources: with several issuers each must name the sources whose user ids its tokens carry (users of two issuers do not share one id space)", where))
		}
	}
	for name, r := range map[string]*RateConfig{
		"per_user": a.RateLimits.PerUser, "per_api_key": a.RateLimits.PerAPIKey,
		"per_ip": a.RateLimits.PerIP, "ingest_per_source": a.RateLimits.IngestPerSource,
	} {
		if r != nil && (r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.Burst < 0) {
			errs = append(errs, fmt.Errorf("access: rate_limits: %s: per_second and burst must be positive (per_second: 0 turns it off)", name))
		}
	}
	return errs
}

func isNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// Credentials resolves the secrets and keys and returns the authenticator.
// Errors name the key or issuer and the reference, never a secret.
func (a *AccessConfig) Credentials() (*api.Credentials, error) {
	var c api.CredentialsConfig
	for _, k := range a.APIKeys {
		raw, err := secret.Resolve(k.SHA256)
		if err != nil {
			return nil, fmt.Errorf("access: api key %s: sha256: %w", k.Name, err)
		}
		h, err := api.ParseAPIKeyHash(string(raw))
		if err != nil {
			return nil, fmt.Errorf("access: api key %s: sha256: %w", k.Name, err)
		}
		scopes := make([]api.Scope, len(k.Scopes))
		for i, s := range k.Scopes {
			scopes[i] = api.Scope(s)
		}
		c.APIKeys = append(c.APIKeys, api.APIKey{Name: k.Name, SHA256: h, Scopes: scopes})
	}
	for _, u := range a.Users {
		keys, err := u.keys()
		if err != nil {
			return nil, fmt.Errorf("access: users %s: %w", u.Issuer, err)
		}
		c.Issuers = append(c.Issuers, api.JWTIssuer{
			Issuer: u.Issuer, Audience: u.Audience, Keys: keys,
			UserClaim: u.UserClaim, Leeway: time.Duration(u.Leeway), Sources: u.Sources,
		})
	}
	return api.NewCredentials(c)
}

func (u UserTokenConfig) keys() (api.JWTKeys, error) {
	if u.JWKS != "" {
		raw, err := secret.Resolve(u.JWKS)
		if err != nil {
			return api.JWTKeys{}, fmt.Errorf("jwks: %w", err)
		}
		return api.ParseJWKS(raw)
	}
	pems, err := secret.ResolveAll(u.PublicKeys)
	if err != nil {
		return api.JWTKeys{}, fmt.Errorf("public_keys%w", err)
	}
	return api.ParsePEMPublicKeys(pems...)
}

// limiter returns the token buckets of r, or of def if r is nil; nil if the
// limit is off.
func (r *RateConfig) limiter(def RateConfig) (*ratelimit.Keyed, error) {
	c := def
	if r != nil {
		c = *r
	}
	if c.PerSecond == 0 {
		return nil, nil
	}
	if c.Burst == 0 {
		c.Burst = max(1, int(math.Ceil(2*c.PerSecond)))
	}
	l, err := ratelimit.New(c.PerSecond, c.Burst, 0)
	if err != nil {
		return nil, fmt.Errorf("access: rate_limits: %w", err)
	}
	return l, nil
}

// Access decides who may query, in one place: the gRPC interceptors of
// handlers/api and its rule table. Both doors pass through them: gRPC
// clients directly, REST clients through the gateway, which reaches the
// gRPC server over gateway (an in-memory listener), so the interceptors
// judge a REST call by the HTTP client's address (the x-forwarded-for entry
// the gateway appends, trusted on that listener only) and a gRPC call by
// its TCP peer.
type Access struct {
	// API is the interceptors' access control (API.Unary, API.Stream),
	// which the REST gateway also asks before it reads a request's body
	// (api.GatewayOptions).
	API *api.Access
	// Gateway carries the REST gateway's connection: serve the gRPC server
	// on it and dial the gateway's conn with Gateway.DialContext.
	Gateway *api.GatewayListener
	// IngestLimit is the per-source rate limit of webhook deliveries
	// (webhook.Options.SourceLimit); nil when it is off.
	IngestLimit webhook.Limiter
}

// NewAccess builds the access control from the config's access section.
// Without one (or without API keys and token issuers in it) only loopback
// clients may query, and only read (admin RPCs need an admin API key,
// always), and a warning says so.
func (c *Config) NewAccess(logger *slog.Logger) (*Access, error) {
	ac := c.Access
	if ac == nil {
		ac = &AccessConfig{}
	}
	sources := c.QuerySources()
	o := api.AccessOptions{Gateway: api.NewGatewayListener(), DefaultSource: sources[0], Logger: logger}
	var err error
	if o.PerIP, err = ac.RateLimits.PerIP.limiter(RateConfig{}); err != nil {
		return nil, err
	}
	if ac.Principals() {
		creds, err := ac.Credentials()
		if err != nil {
			return nil, err
		}
		o.Authenticator = creds
		if o.PerUser, err = ac.RateLimits.PerUser.limiter(defaultPerUser); err != nil {
			return nil, err
		}
		if o.PerAPIKey, err = ac.RateLimits.PerAPIKey.limiter(defaultPerAPIKey); err != nil {
			return nil, err
		}
		var keys, issuers []string
		for _, k := range ac.APIKeys {
			keys = append(keys, k.Name+"="+strings.Join(k.Scopes, "+"))
		}
		for _, u := range ac.Users {
			issuers = append(issuers, u.Issuer)
		}
		logger.Info("access control on: queries need an API key or a user token", "api_keys", keys, "token_issuers", issuers,
			"per_user_limit", o.PerUser != nil, "per_api_key_limit", o.PerAPIKey != nil, "per_ip_limit", o.PerIP != nil)
	} else {
		logger.Warn("no API keys or token issuers in the config (access section): the query API answers loopback clients only, and only their reads: admin RPCs (audit, rebuild, quarantine) need an API key with the admin scope")
	}
	a, err := api.NewAccess(o)
	if err != nil {
		return nil, err
	}
	out := &Access{API: a, Gateway: o.Gateway}
	ingestLimit, err := ac.RateLimits.IngestPerSource.limiter(RateConfig{})
	if err != nil {
		return nil, err
	}
	if ingestLimit != nil { // not a nil *Keyed in a non-nil interface
		out.IngestLimit = ingestLimit
	}
	return out, nil
}
