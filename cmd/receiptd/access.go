package main

import (
	"log/slog"
	"strings"

	"google.golang.org/grpc"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/webhook"
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
	// ingestLimit is the per-source rate limit of webhook deliveries
	// (webhook.Options.SourceLimit); nil when it is off.
	ingestLimit webhook.Limiter
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
	out := &access{unary: a.Unary, stream: a.Stream, api: a, gateway: o.Gateway}
	ingestLimit, err := ac.RateLimits.IngestPerSource.limiter(RateConfig{})
	if err != nil {
		return nil, err
	}
	if ingestLimit != nil { // not a nil *Keyed in a non-nil interface
		out.ingestLimit = ingestLimit
	}
	return out, nil
}
