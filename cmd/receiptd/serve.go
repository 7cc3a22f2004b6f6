package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/datadir"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/console"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/internal/tlsreload"
	"github.com/receiptd/receiptd/projections"
)

// overdueSweepEvery is how often the overdue sweep counts the stuck
// receipts for receiptd_receipts_overdue.
const overdueSweepEvery = time.Minute

// shutdownGrace bounds how long in-flight requests may take to finish after
// SIGTERM before the listeners are closed hard.
const shutdownGrace = 15 * time.Second

// serve runs receiptd until ctx ends, then shuts down gracefully: in-flight
// deliveries finish their appends (nothing acknowledged is lost), then the
// projections stop at a checkpoint, then the store closes.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	mem := cfg.Memory(true)
	mem.Apply(logger)
	providers, err := cfg.Providers(logger)
	if err != nil {
		return err
	}
	store, err := datadir.OpenStore(cfg, mem)
	if err != nil {
		return err
	}
	defer store.Close()
	viewsPath := filepath.Join(cfg.DataDir, "views.db")
	views, err := projections.Open(viewsPath, projections.WithCacheBytes(mem.Records), projections.WithMappedLimit(mem.Mapped))
	if errors.Is(err, projections.ErrLocked) {
		return fmt.Errorf("%w (is another receiptd running on --data-dir %s?)", err, cfg.DataDir)
	}
	if err != nil {
		return err
	}
	defer views.Close()
	// With the read models locked, scratch files beside them are what a
	// crash during a rebuild or an audit left behind.
	if err := projections.RemoveScratch(viewsPath); err != nil {
		logger.Warn("could not remove a rebuild's leftover files", "err", err)
	}
	if v := views.DiscardedSchema(); v != "" {
		logger.Warn("read models of an older schema were discarded; rebuilding them from the log", "old_schema", v)
	}
	if views.DiscardedUnsynced() {
		logger.Warn("read models left unsynced by a machine restart were discarded; rebuilding them from the log")
	}
	// Read models past the log's head were built from a log that has
	// since gone back in time (a restored backup): never serve them.
	if err := views.RebuildIfAhead(ctx, store, logger); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(projections.NewCollector(views, store, logger))
	// Stuck receipts: the sweep and the API read the same clock.
	overdue := cfg.Overdue(time.Now)
	overdueSweep := projections.NewOverdueSweep(views, cfg.QuerySources(), overdue.Now, overdue.After, logger)
	reg.MustRegister(overdueSweep)

	access, err := cfg.NewAccess(logger)
	if err != nil {
		return err
	}
	// The data keys personal data is sealed under (privacy: in the
	// config); without it, everything is stored in the clear.
	keyring, err := datadir.OpenKeyring(ctx, cfg, store, mem)
	if err != nil {
		return err
	}
	var keys webhook.Keys
	if keyring != nil {
		defer keyring.Close()
		keys = keyring
	}
	ingestHealth := webhook.NewStoreHealth(store, webhook.HealthOptions{}) // /readyz: false while appends fail
	hooks, err := webhook.New(ingestHealth, providers, webhook.Options{
		MaxBodyBytes:       cfg.Ingest.MaxBodyBytes,
		StoreDeadline:      time.Duration(cfg.Ingest.StoreDeadline),
		DecisionCacheBytes: mem.Decisions,
		Logger:             logger,
		Metrics:            webhook.NewMetrics(reg),
		SourceLimit:        access.IngestLimit,
		Keys:               keys,
	})
	if err != nil {
		return err
	}
	reg.MustRegister(hooks.Collector())

	// Projections follow the log for as long as the server runs.
	runCtx, stopRunner := context.WithCancel(context.Background())
	defer stopRunner()
	runner := projections.NewRunner(store, views, logger)
	var runnerWG sync.WaitGroup
	var runnerErr error
	runnerWG.Go(func() { runnerErr = runner.Run(runCtx) })
	runnerWG.Go(func() { overdueSweep.Run(runCtx, overdueSweepEvery) })
	// The feed's destinations are pushed to until the runner stops.
	var subjects api.Subjects
	if keyring != nil {
		subjects = keyring
	}
	pusher, stopPusher, err := startPusher(runCtx, cfg, views, subjects, reg, logger)
	if err != nil {
		return err
	}
	defer stopPusher()

	// TLS on both listeners, if configured: the certificate is read now
	// and again on SIGHUP.
	var certs *tlsreload.Reloader
	if cfg.TLS.Enabled() {
		if certs, err = tlsreload.New(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return err
		}
		logger.Info("TLS on the HTTP and gRPC listeners", certs.LogAttrs()...)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupDone := make(chan struct{})
	defer close(hupDone)
	go certs.ReloadOn(hup, hupDone, logger)

	// gRPC: one server on --grpc-addr and one the REST gateway reaches in
	// process, with the same services and interceptors (see
	// grpcServerOptions for why two).
	grpcLis, err := boundedListen("grpc", cfg.GRPCAddr, cfg.GRPC.MaxConnections)
	if err != nil {
		return err
	}
	httpLis, err := boundedListen("http", cfg.HTTPAddr, cfg.HTTP.MaxConnections)
	if err != nil {
		grpcLis.Close()
		return err
	}
	onPanic := registerServerMetrics(reg, map[string]*ratelimit.Listener{"grpc": grpcLis, "http": httpLis})
	tcpOpts, gatewayOpts := grpcServerOptions(cfg, access, api.Recovery{Logger: logger, OnPanic: onPanic}, certs)
	gs, gws := grpc.NewServer(tcpOpts...), grpc.NewServer(gatewayOpts...)
	// Watches end when the server starts shutting down (UNAVAILABLE: their
	// clients reconnect), so graceful shutdown does not wait for them.
	watchCtx, stopWatches := context.WithCancel(context.Background())
	defer stopWatches()
	apiOpts := []api.Option{api.WithMaxWait(time.Duration(cfg.Query.MaxWait)), api.WithLogger(logger), api.WithLifetime(watchCtx)}
	sources := cfg.QuerySources()
	// With privacy, the API opens sealed personal fields and shows
	// forgotten subjects as such.
	var privacyOpts []api.Option
	if keyring != nil {
		privacyOpts = append(privacyOpts, api.WithSubjects(keyring))
	}
	svc, err := api.NewReceiptService(views, sources, slices.Concat(apiOpts, privacyOpts, []api.Option{api.WithEventLog(projections.NewHistory(store)), api.WithOverdue(overdue)})...)
	if err != nil {
		return err
	}
	privacySvc, err := api.NewPrivacyService(store, views, sources, slices.Concat(apiOpts, privacyOpts, []api.Option{api.WithUserNamespaces(cfg.UserNamespaces())})...)
	if err != nil {
		return err
	}
	statsSvc, err := api.NewStatsService(views, sources, append(slices.Clip(apiOpts), api.WithOverdue(overdue))...)
	if err != nil {
		return err
	}
	// Audits and online rebuilds work on the live read models: a rebuild
	// swaps a new file in under the same *projections.DB, which the
	// services above and the runner go on using.
	auditSvc, err := api.NewAuditService(projections.NewAuditMetrics(projections.NewAdmin(views, store), reg), sources, append(apiOpts, api.WithQuarantine(hooks))...)
	if err != nil {
		return err
	}
	backupSvc, err := api.NewBackupService(datadir.Snapshotter(store), apiOpts...)
	if err != nil {
		return err
	}
	feedSvc, err := newFeedService(views, sources, slices.Concat(apiOpts, privacyOpts), pusher, reg)
	if err != nil {
		return err
	}
	healthSrv := health.NewServer()
	for _, s := range []*grpc.Server{gs, gws} {
		receiptdv1.RegisterReceiptServiceServer(s, svc)
		receiptdv1.RegisterStatsServiceServer(s, statsSvc)
		receiptdv1.RegisterAuditServiceServer(s, auditSvc)
		receiptdv1.RegisterBackupServiceServer(s, backupSvc)
		receiptdv1.RegisterPrivacyServiceServer(s, privacySvc)
		receiptdv1.RegisterFeedServiceServer(s, feedSvc)
		healthpb.RegisterHealthServer(s, healthSrv)
	}
	reflection.Register(gs)

	// REST: the gateway calls this same gRPC server, over an in-memory
	// listener (access.gateway), so both doors pass through the same
	// interceptors, which judge a REST call by its HTTP client's address.
	// Its limits mirror the server's: it receives every answer the server
	// may send (a quarantine page with raw bodies; the default 4 MiB did
	// not hold five 900 KB deliveries), and sends nothing the server would
	// refuse.
	conn, err := grpc.NewClient("passthrough:///receiptd-gateway", grpc.WithContextDialer(access.Gateway.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.GRPC.MaxSendMsgBytes), grpc.MaxCallSendMsgSize(cfg.GRPC.MaxRecvMsgBytes)))
	if err != nil {
		return fmt.Errorf("gateway dial: %w", err)
	}
	defer conn.Close()
	gw, err := api.NewGateway(ctx, conn, api.GatewayOptions{Access: access.API, MaxBodyBytes: cfg.Query.MaxBodyBytes, Logger: logger})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	hookMux := http.NewServeMux()
	hooks.Register(hookMux)
	mux.Handle("/webhooks/", hookMux)
	mux.Handle("/v1/", gw)
	mux.Handle("/openapi.json", api.OpenAPIHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ingestHealth.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: store unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	var consoleWG sync.WaitGroup
	if cfg.Console.Enabled {
		deps := consoleDeps{
			conn: conn, store: store, views: views, health: ingestHealth, gatherer: reg,
			httpAddr: httpLis.Addr(), certs: certs, lifetime: watchCtx, logger: logger,
		}
		if keyring != nil {
			deps.keys = keyring
		}
		c, err := newConsole(cfg, deps)
		if err != nil {
			return err
		}
		mux.Handle(console.Prefix, c.Handler())
		consoleWG.Go(func() {
			if err := c.Run(watchCtx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Warn("console: live feed stopped", "err", err)
			}
		})
		defer func() { stopWatches(); consoleWG.Wait() }() // the feed ends with watchCtx
		logger.Info("operator console on", "path", console.Prefix)
	}
	httpSrv := newHTTPServer(cfg, mux, certs, logger)

	errc := make(chan error, 3)
	go func() { errc <- fmt.Errorf("grpc: %w", gs.Serve(grpcLis)) }()
	go func() { errc <- fmt.Errorf("grpc (gateway): %w", gws.Serve(access.Gateway)) }()
	go func() {
		if certs != nil {
			errc <- fmt.Errorf("https: %w", httpSrv.ServeTLS(httpLis, "", ""))
			return
		}
		errc <- fmt.Errorf("http: %w", httpSrv.Serve(httpLis))
	}()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	logger.Info("listening", "http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String(), "tls", certs != nil,
		"store", cfg.Store.Kind, "data_dir", cfg.DataDir, "sources", len(providers), "version", version)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests")
	case serveErr = <-errc:
		logger.Error("listener failed; shutting down", "err", serveErr)
	}
	healthSrv.Shutdown()

	// 1. Stop taking requests and let in-flight ones (appends) finish;
	// watches end at once (their clients reconnect to another server).
	stopWatches()
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		logger.Warn("http shutdown incomplete", "err", err)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); gws.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		gs.Stop()
		gws.Stop()
	}
	// 2. Stop the projections at a checkpoint; 3. close the store (deferred).
	stopRunner()
	runnerWG.Wait()
	if runnerErr != nil && !errors.Is(runnerErr, context.Canceled) {
		logger.Warn("projection runner ended", "err", runnerErr)
	}
	logger.Info("stopped", "checkpoint", views.Checkpoint().String())
	return serveErr
}
