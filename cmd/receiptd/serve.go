package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
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
	"github.com/receiptd/receiptd/handlers/webhook"
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
	views, err := projections.Open(filepath.Join(cfg.DataDir, "views.db"))
	if err != nil {
		return err
	}
	defer views.Close()
	if v := views.DiscardedSchema(); v != "" {
		logger.Warn("read models of an older schema were discarded; rebuilding them from the log", "old_schema", v)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerProjectionMetrics(reg, store, views)

	hooks, err := webhook.New(store, providers, webhook.Options{
		MaxBodyBytes:  cfg.Ingest.MaxBodyBytes,
		StoreDeadline: time.Duration(cfg.Ingest.StoreDeadline),
		Logger:        logger,
		Metrics:       webhook.NewMetrics(reg),
	})
	if err != nil {
		return err
	}

	// Projections follow the log for as long as the server runs.
	runCtx, stopRunner := context.WithCancel(context.Background())
	defer stopRunner()
	runner := projections.NewRunner(store, views, logger)
	var runnerWG sync.WaitGroup
	var runnerErr error
	runnerWG.Go(func() { runnerErr = runner.Run(runCtx) })

	// gRPC.
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	access, err := newAccess(cfg, logger)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(access.unary), grpc.ChainStreamInterceptor(access.stream))
	svc, err := api.NewReceiptService(views, querySources(cfg), api.WithMaxWait(time.Duration(cfg.Query.MaxWait)), api.WithLogger(logger))
	if err != nil {
		return err
	}
	receiptdv1.RegisterReceiptServiceServer(gs, svc)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(gs, healthSrv)
	reflection.Register(gs)

	// REST: the gateway calls this server's own gRPC port, so both doors
	// pass through the same interceptors.
	conn, err := grpc.NewClient(dialable(grpcLis.Addr()), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gateway dial: %w", err)
	}
	defer conn.Close()
	gw, err := api.NewGateway(ctx, conn)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	hooks.Register(mux)
	mux.Handle("/v1/", access.http(gw))
	mux.Handle("/openapi.json", api.OpenAPIHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context(), store); err != nil {
			http.Error(w, "not ready: store unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("grpc: %w", gs.Serve(grpcLis)) }()
	go func() { errc <- fmt.Errorf("http: %w", httpSrv.Serve(httpLis)) }()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	logger.Info("listening", "http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String(),
		"store", cfg.Store.Kind, "data_dir", cfg.DataDir, "sources", len(providers), "version", version)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests")
	case serveErr = <-errc:
		logger.Error("listener failed; shutting down", "err", serveErr)
	}
	healthSrv.Shutdown()

	// 1. Stop taking requests and let in-flight ones (appends) finish.
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		logger.Warn("http shutdown incomplete", "err", err)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		gs.Stop()
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

func ready(ctx context.Context, store eventstore.Store) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := store.Head(ctx)
	return err
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

// dialable turns a listener address into one this process can dial: an
// unspecified host (":9090", "0.0.0.0") becomes loopback.
func dialable(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	if ap.Addr().IsUnspecified() {
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()).String()
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port()).String()
	}
	return a.String()
}
