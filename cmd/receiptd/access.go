package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/ratelimit"
)

// access decides who may query, in one place: the gRPC interceptors of
// handlers/api and its rule table. Both doors pass through them: gRPC
// clients directly, REST clients through the gateway, which reaches the
// gRPC server over gateway (an in-memory listener), so the interceptors
// judge a REST call by the HTTP client's address (the x-forwarded-for entry
// the gateway appends, trusted on that listener only) and a gRPC call by
// its TCP peer.
type access struct {
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
	// api is the interceptors' access control, which the REST gateway
	// also asks before it reads a request's body (api.GatewayOptions).
	api *api.Access
	// gateway carries the REST gateway's connection: serve the gRPC server
	// on it and dial the gateway's conn with gateway.DialContext.
	gateway *api.GatewayListener
	// ingest wraps the webhook routes with the per-source rate limit (the
	// handler itself when the limit is off).
	ingest func(http.Handler) http.Handler
}

// newAccess builds the access control from the config's access section.
// Without one (or without API keys and token issuers in it) only loopback
// clients may query, and only read (admin RPCs need an admin API key,
// always), and a warning says so.
func newAccess(cfg Config, logger *slog.Logger) (*access, error) {
	ac := cfg.Access
	if ac == nil {
		ac = &AccessConfig{}
	}
	sources := querySources(cfg)
	o := api.AccessOptions{Gateway: api.NewGatewayListener(), DefaultSource: sources[0], Logger: logger}
	var err error
	if o.PerIP, err = ac.RateLimits.PerIP.limiter(RateConfig{}); err != nil {
		return nil, err
	}
	if ac.principals() {
		creds, err := ac.credentials()
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
	ingestLimit, err := ac.RateLimits.IngestPerSource.limiter(RateConfig{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range cfg.Sources {
		names = append(names, s.Name)
	}
	return &access{
		unary:   a.Unary,
		stream:  a.Stream,
		api:     a,
		gateway: o.Gateway,
		ingest:  ingestLimiter(ingestLimit, names, logger),
	}, nil
}

// ingestLimiter returns middleware for the webhook routes
// (/webhooks/{source}[/{token}]) taking one token per delivery from the
// source's bucket, before verification: 429 with Retry-After when empty.
// Paths naming no configured source pass (they are 404 anyway), so they
// cannot fill the table. The path is never logged: it may hold a token.
func ingestLimiter(lim *ratelimit.Keyed, sources []string, logger *slog.Logger) func(http.Handler) http.Handler {
	if lim == nil {
		return func(h http.Handler) http.Handler { return h }
	}
	known := make(map[string]bool, len(sources))
	for _, s := range sources {
		known[s] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			source, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/webhooks/"), "/")
			if known[source] {
				if ok, wait := lim.Take(source, time.Now()); !ok {
					secs := ratelimit.RetryAfterSeconds(wait)
					w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
					http.Error(w, "too many deliveries for this source; retry later", http.StatusTooManyRequests)
					logger.DebugContext(r.Context(), "webhook rate limited", "source", source, "retry_after_s", secs)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
