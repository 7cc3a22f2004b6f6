package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/examples"
	"github.com/receiptd/receiptd/handlers/console"
	"github.com/receiptd/receiptd/handlers/webhook"
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
func newConsole(cfg config.Config, d consoleDeps) (*console.Console, error) {
	creds, err := cfg.Access.Credentials()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	sources, err := cfg.ConsoleSources()
	if err != nil {
		return nil, err
	}
	started := time.Now()
	base := console.LoopbackURL(d.httpAddr)
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
		SecureCookie: cfg.TLS.SecureCookie(),
		Examples:     examples.Payloads,
		SessionTTL:   time.Duration(cfg.Console.SessionTTL),
		SampleEvery:  time.Duration(cfg.Console.SampleEvery),
		Lifetime:     d.lifetime,
		Logger:       d.logger,
	})
}
