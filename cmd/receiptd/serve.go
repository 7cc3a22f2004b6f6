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

	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/console"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/projections"
)

// shutdownGrace bounds how long in-flight requests may take to finish after
// SIGTERM before the listeners are closed hard.
const shutdownGrace = 15 * time.Second

// serve runs receiptd until ctx ends, then shuts down gracefully: in-flight
// deliveries finish their appends (nothing acknowledged is lost), then the
// projections stop at a checkpoint, then the store closes.
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	providers, err := buildProviders(cfg, logger)
	if err != nil {
		return err
	}
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	viewsPath := filepath.Join(cfg.DataDir, "views.db")
	views, err := projections.Open(viewsPath)
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
	if err := rebuildIfAhead(ctx, store, views, logger); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerProjectionMetrics(reg, store, views)
	reg.MustRegister(&statsCollector{views: views, logger: logger})

	ingestHealth := webhook.NewStoreHealth(store, webhook.HealthOptions{}) // /readyz: false while appends fail
	hooks, err := webhook.New(ingestHealth, providers, webhook.Options{
		MaxBodyBytes:       cfg.Ingest.MaxBodyBytes,
		StoreDeadline:      time.Duration(cfg.Ingest.StoreDeadline),
		DecisionCacheBytes: cfg.Ingest.DecisionCacheBytes,
		Logger:             logger,
		Metrics:            webhook.NewMetrics(reg),
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

	// TLS on both listeners, if configured: the certificate is read now
	// and again on SIGHUP.
	var certs *certReloader
	if cfg.TLS.enabled() {
		if certs, err = newCertReloader(cfg.TLS); err != nil {
			return err
		}
		logger.Info("TLS on the HTTP and gRPC listeners", certs.logAttrs()...)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupDone := make(chan struct{})
	defer close(hupDone)
	go reloadOnSignal(certs, hup, hupDone, logger)

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
	access, err := newAccess(cfg, logger)
	if err != nil {
		return err
	}
	tcpOpts, gatewayOpts := grpcServerOptions(cfg, access, api.Recovery{Logger: logger, OnPanic: onPanic}, certs)
	gs, gws := grpc.NewServer(tcpOpts...), grpc.NewServer(gatewayOpts...)
	// Watches end when the server starts shutting down (UNAVAILABLE: their
	// clients reconnect), so graceful shutdown does not wait for them.
	watchCtx, stopWatches := context.WithCancel(context.Background())
	defer stopWatches()
	apiOpts := []api.Option{api.WithMaxWait(time.Duration(cfg.Query.MaxWait)), api.WithLogger(logger), api.WithLifetime(watchCtx)}
	sources := querySources(cfg)
	svc, err := api.NewReceiptService(views, sources, append(apiOpts, api.WithEventLog(projections.NewHistory(store)))...)
	if err != nil {
		return err
	}
	statsSvc, err := api.NewStatsService(views, sources, apiOpts...)
	if err != nil {
		return err
	}
	// Audits and online rebuilds work on the live read models: a rebuild
	// swaps a new file in under the same *projections.DB, which the
	// services above and the runner go on using.
	auditSvc, err := api.NewAuditService(newAuditMetrics(projections.NewAdmin(views, store), reg), sources, append(apiOpts, api.WithQuarantine(quarantine{store: store, hooks: hooks}))...)
	if err != nil {
		return err
	}
	backupSvc, err := api.NewBackupService(backupSnapshotter(store), apiOpts...)
	if err != nil {
		return err
	}
	healthSrv := health.NewServer()
	for _, s := range []*grpc.Server{gs, gws} {
		receiptdv1.RegisterReceiptServiceServer(s, svc)
		receiptdv1.RegisterStatsServiceServer(s, statsSvc)
		receiptdv1.RegisterAuditServiceServer(s, auditSvc)
		receiptdv1.RegisterBackupServiceServer(s, backupSvc)
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
	conn, err := grpc.NewClient("passthrough:///receiptd-gateway", grpc.WithContextDialer(access.gateway.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.GRPC.MaxSendMsgBytes), grpc.MaxCallSendMsgSize(cfg.GRPC.MaxRecvMsgBytes)))
	if err != nil {
		return fmt.Errorf("gateway dial: %w", err)
	}
	defer conn.Close()
	gw, err := api.NewGateway(ctx, conn, api.GatewayOptions{Access: access.api, MaxBodyBytes: cfg.Query.MaxBodyBytes, Logger: logger})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	hookMux := http.NewServeMux()
	hooks.Register(hookMux)
	mux.Handle("/webhooks/", access.ingest(hookMux))
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
		c, err := newConsole(cfg, consoleDeps{
			conn: conn, store: store, views: views, health: ingestHealth, gatherer: reg,
			httpAddr: httpLis.Addr(), certs: certs, lifetime: watchCtx, logger: logger,
		})
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
	go func() { errc <- fmt.Errorf("grpc (gateway): %w", gws.Serve(access.gateway)) }()
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

// querySources lists the sources the query API serves, the default first.
// With none configured, queries default to the primary provider's usual name.
func querySources(cfg Config) []string {
	var names []string
	for _, s := range cfg.Sources {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		names = []string{"reewild"}
	}
	return names
}

func registerProjectionMetrics(reg prometheus.Registerer, store eventstore.Store, views *projections.DB) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "receiptd_projection_lag_events",
		Help: "How far the read models are behind the log: head position minus the read models' checkpoint (events, on the embedded store).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		head, err := store.Head(ctx)
		if err != nil {
			return -1
		}
		cp := views.Checkpoint()
		if !cp.Less(head) {
			return 0
		}
		return float64(head.Commit - cp.Commit)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "receiptd_projection_checkpoint",
		Help: "Commit position of the last event applied to the read models.",
	}, func() float64 { return float64(views.Checkpoint().Commit) }))
}

// statsCollector exports the pipeline statistics read model (all days,
// every source) as Prometheus gauges, read at each scrape. They are gauges,
// not counters: a late or corrected fact can move a receipt from FAILED to
// COMPLETED, or change its points.
type statsCollector struct {
	views  *projections.DB
	logger *slog.Logger
}

var (
	statsReceiptsDesc = prometheus.NewDesc("receiptd_pipeline_receipts",
		"Receipts by source and status (completed, failed, in_progress), from the pipeline statistics read model.", []string{"source", "status"}, nil)
	statsFailuresDesc = prometheus.NewDesc("receiptd_pipeline_failures",
		"Failed receipts by source and failure stage as the provider sent it.", []string{"source", "failure_stage"}, nil)
	statsPointsDesc = prometheus.NewDesc("receiptd_pipeline_points",
		"Points awarded to completed receipts, by source (the exact sum is GET /v1/stats).", []string{"source"}, nil)
	statsCO2eDesc = prometheus.NewDesc("receiptd_pipeline_co2e",
		"CO2e of completed receipts, by source (the exact sum is GET /v1/stats).", []string{"source"}, nil)
	statsDurationDesc = prometheus.NewDesc("receiptd_pipeline_time_to_terminal_seconds",
		"Time from UPLOADED to the terminal stage over every terminal receipt with a known time, by source and quantile (within 0.8%).", []string{"source", "quantile"}, nil)
	statsAmountAnomaliesDesc = prometheus.NewDesc("receiptd_amount_anomalies",
		"Amounts outside the sanity bounds (negative, or points above 10,000,000), kept as sent and flagged: receipts whose view has an amount_out_of_bounds anomaly (kind receipt) and credits (kind credit), by source.", []string{"source", "kind"}, nil)
	statsTimedDesc = prometheus.NewDesc("receiptd_pipeline_time_to_terminal_receipts",
		"Terminal receipts by source and how their time to terminal is known: provider (timestamps), received (receiptd's clock) or missing (no UPLOADED).", []string{"source", "clock"}, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{statsReceiptsDesc, statsFailuresDesc, statsPointsDesc, statsCO2eDesc, statsDurationDesc, statsTimedDesc, statsAmountAnomaliesDesc} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	totals, err := c.views.StatsTotals(ctx)
	if err != nil {
		c.logger.Warn("metrics: read the pipeline statistics", "err", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range totals {
		t := s.Total
		gauge(statsReceiptsDesc, float64(t.Completed), s.Source, "completed")
		gauge(statsReceiptsDesc, float64(t.Failed), s.Source, "failed")
		gauge(statsReceiptsDesc, float64(s.InProgress), s.Source, "in_progress")
		for stage, n := range t.FailedByStage {
			gauge(statsFailuresDesc, float64(n), s.Source, stage)
		}
		gauge(statsPointsDesc, t.Points.InexactFloat64(), s.Source)
		gauge(statsCO2eDesc, t.CO2e.InexactFloat64(), s.Source)
		d := t.TimeToTerminal
		gauge(statsTimedDesc, float64(d.ProviderTimed), s.Source, "provider")
		gauge(statsTimedDesc, float64(d.Count-d.ProviderTimed), s.Source, "received")
		gauge(statsTimedDesc, float64(d.Missing), s.Source, "missing")
		gauge(statsAmountAnomaliesDesc, float64(s.AmountAnomalies), s.Source, "receipt")
		gauge(statsAmountAnomaliesDesc, float64(s.CreditAnomalies), s.Source, "credit")
		if d.Count > 0 {
			gauge(statsDurationDesc, d.P50.Seconds(), s.Source, "0.5")
			gauge(statsDurationDesc, d.P90.Seconds(), s.Source, "0.9")
			gauge(statsDurationDesc, d.P99.Seconds(), s.Source, "0.99")
		}
	}
}
