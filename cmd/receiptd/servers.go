package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/internal/tlsreload"
)

// The bounds of the two listeners and of the gRPC servers, from the http:
// and grpc: sections (README "Security notes" lists them).

// grpcServerOptions returns the options of the gRPC server on --grpc-addr
// (tcp) and of the one the REST gateway reaches in process (gateway).
// Both recover from a handler's panic (first in the chain) and enforce
// access; both bound message sizes. Only tcp bounds calls per connection
// and connection lifetimes: every REST request shares the gateway's one
// connection, and the HTTP listener bounds those.
// With certs, the --grpc-addr server speaks TLS; the gateway's in-process
// connection stays plain.
//
// Both run calls on a pool of stream workers (streamWorkers) rather than
// a new goroutine per call: a call's stack (interceptors, the handler, a
// read transaction's B-tree search) outgrows a new goroutine's, and
// growing it was 6-11% of the server's CPU in the bench's query phase.
func grpcServerOptions(cfg config.Config, a *config.Access, rec api.Recovery, certs *tlsreload.Reloader) (tcp, gateway []grpc.ServerOption) {
	g := cfg.GRPC
	common := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(rec.Unary, a.API.Unary),
		grpc.ChainStreamInterceptor(rec.Stream, a.API.Stream),
		grpc.MaxRecvMsgSize(g.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(g.MaxSendMsgBytes),
		grpc.MaxHeaderListSize(uint32(cfg.HTTP.MaxHeaderBytes)),
		grpc.NumStreamWorkers(streamWorkers),
	}
	tcp = append(common[:len(common):len(common)],
		grpc.MaxConcurrentStreams(uint32(g.MaxConcurrentStreams)),
		grpc.ConnectionTimeout(time.Duration(g.HandshakeTimeout)),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     time.Duration(g.MaxConnectionIdle),
			MaxConnectionAge:      time.Duration(g.MaxConnectionAge),
			MaxConnectionAgeGrace: time.Duration(g.MaxConnectionAgeGrace),
			Time:                  time.Duration(g.KeepaliveTime),
			Timeout:               time.Duration(g.KeepaliveTimeout),
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             time.Duration(g.MinPingInterval),
			PermitWithoutStream: g.PermitPingWithoutCalls,
		}),
	)
	if certs != nil {
		tcp = append(tcp, grpc.Creds(credentials.NewTLS(certs.ServerConfig())))
	}
	return tcp, common
}

// streamWorkers is the size of each gRPC server's pool of stream
// workers: goroutines that run one call after another and so keep the
// stack the calls grew. A call that finds every worker busy runs on a
// goroutine of its own, as without a pool; watches and feed
// subscriptions hold a worker for their whole life. The pool covers the
// calls in flight on a busy server (the bench's 32 callers); an idle
// worker costs its stack, a few KiB.
const streamWorkers = 64

// newHTTPServer is the server of the HTTP listener; with certs it is to
// serve TLS (ServeTLS with no file names).
func newHTTPServer(cfg config.Config, h http.Handler, certs *tlsreload.Reloader, logger *slog.Logger) *http.Server {
	c := cfg.HTTP
	var tc *tls.Config
	if certs != nil {
		tc = certs.ServerConfig()
	}
	return &http.Server{
		TLSConfig:         tc,
		Handler:           h,
		ReadHeaderTimeout: time.Duration(c.ReadHeaderTimeout),
		// Whole-request bounds: webhooks and queries answer well inside
		// them. Watches, audits and rebuilds over REST outlast them: the
		// gateway lifts them for those routes, once their caller is
		// checked and their body read, and bounds each write instead
		// (api.StreamWriteTimeout).
		ReadTimeout:    time.Duration(c.ReadTimeout),
		WriteTimeout:   time.Duration(c.WriteTimeout),
		IdleTimeout:    time.Duration(c.IdleTimeout),
		MaxHeaderBytes: c.MaxHeaderBytes,
		HTTP2:          &http.HTTP2Config{MaxConcurrentStreams: c.MaxConcurrentStreams, MaxReceiveBufferPerConnection: 1 << 20, MaxReceiveBufferPerStream: 1 << 20},
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// boundedListen listens on addr and keeps at most max connections open.
func boundedListen(what, addr string, max int) (*ratelimit.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	bl, err := ratelimit.NewListener(l, max)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	return bl, nil
}

// registerServerMetrics exports the listeners' connection counts and the
// handler panics recovered.
func registerServerMetrics(reg prometheus.Registerer, listeners map[string]*ratelimit.Listener) (onPanic func(string)) {
	for name, l := range listeners {
		labels := prometheus.Labels{"listener": name}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "receiptd_connections_open", Help: "Connections open on a listener (http, grpc).", ConstLabels: labels,
		}, func() float64 { return float64(l.Open()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "receiptd_connections_max", Help: "The bound of connections open at once on a listener (http.max_connections, grpc.max_connections).", ConstLabels: labels,
		}, func() float64 { return float64(l.Max()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "receiptd_connections_refused_total", Help: "Connections closed as soon as accepted because the listener had its bound open.", ConstLabels: labels,
		}, func() float64 { return float64(l.Refused()) }))
	}
	panics := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "receiptd_grpc_panics_total", Help: "Panics in gRPC handlers, recovered and answered INTERNAL, by method.",
	}, []string{"method"})
	reg.MustRegister(panics)
	return func(method string) { panics.WithLabelValues(method).Inc() }
}
