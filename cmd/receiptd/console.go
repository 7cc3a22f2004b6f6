package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/examples"
	"github.com/receiptd/receiptd/handlers/console"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/secret"
	"github.com/receiptd/receiptd/internal/tlsreload"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// consoleDeps are the parts of the running server the console uses.
type consoleDeps struct {
	conn     grpc.ClientConnInterface // the query API, through the access interceptors
	store    eventstore.Store
	views    *projections.DB
	health   *webhook.StoreHealth
	gatherer prometheus.Gatherer
	httpAddr net.Addr
	certs    *tlsreload.Reloader // TLS on the HTTP listener, or nil
	lifetime context.Context
	logger   *slog.Logger
	keys     privacy.Opener // nil without privacy
}

// newConsole builds the operator console (config section console:). Its
// sign-in checks keys with the access section's credentials; Validate has
// made sure one of them holds the admin scope.
func newConsole(cfg Config, d consoleDeps) (*console.Console, error) {
	creds, err := cfg.Access.credentials()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var sources []console.Source
	for _, s := range cfg.Sources {
		cs := console.Source{Name: s.Name, Kind: s.Kind, Algorithm: s.Algorithm, Encoding: s.Encoding}
		refs := s.Secrets
		if s.Kind == "reward" || s.Kind == "retm" {
			refs = s.Tokens
		}
		if s.Kind != "reap" && len(refs) > 0 {
			key, err := secret.Resolve(refs[0])
			if err != nil {
				return nil, fmt.Errorf("console: source %s: %w", s.Name, err)
			}
			cs.Key = key
		}
		sources = append(sources, cs)
	}
	started := time.Now()
	base := loopbackURL(d.httpAddr)
	var client *http.Client
	if d.certs != nil {
		base = "https" + strings.TrimPrefix(base, "http")
		client = d.certs.SelfClient()
	}
	return console.New(console.Options{
		Conn:     d.conn,
		Auth:     creds,
		Log:      d.store,
		Keys:     d.keys,
		Gatherer: d.gatherer,
		Status: func(ctx context.Context) console.Status {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st := console.Status{Version: version, StoreKind: cfg.Store.Kind, Models: projections.Names(), Started: started,
				StoreErr: d.health.Ready(ctx), Checkpoint: d.views.Checkpoint()}
			st.Head, st.HeadErr = d.store.Head(ctx)
			return st
		},
		Sources:    sources,
		WebhookURL: func() string { return base },
		// "Send test event" reaches this listener by its address: over
		// TLS, trusting exactly the certificate it serves.
		WebhookClient: client,
		// The cookie is Secure over TLS, and behind a proxy that
		// terminates TLS (tls.behind_proxy).
		SecureCookie: cfg.TLS.secureCookie(),
		Examples:     examples.Payloads,
		SessionTTL:   time.Duration(cfg.Console.SessionTTL),
		SampleEvery:  time.Duration(cfg.Console.SampleEvery),
		Lifetime:     d.lifetime,
		Logger:       d.logger,
	})
}

// loopbackURL is the base URL this process reaches its own HTTP listener
// at: an unspecified host (":8080", "0.0.0.0") becomes loopback.
func loopbackURL(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ap.Addr().IsUnspecified() {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			lo = netip.IPv6Loopback()
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return "http://" + ap.String()
}
