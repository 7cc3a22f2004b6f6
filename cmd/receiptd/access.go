package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// access decides who may query. Both doors pass through it: gRPC through its
// interceptors, REST through its HTTP middleware (and then, via the gateway,
// through the gRPC interceptors too).
type access struct {
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
	http   func(http.Handler) http.Handler
}

// newAccess builds the access rules from the config. Without an access
// section, only loopback clients may query.
func newAccess(_ Config, logger *slog.Logger) (*access, error) {
	logger.Warn("no access section in the config: the query API answers loopback clients only")
	return &access{unary: loopbackOnlyUnary, stream: loopbackOnlyStream, http: loopbackOnlyHTTP}, nil
}

// Until access control is configured, only loopback clients may query. The
// REST door checks the HTTP client's address; the gRPC door the peer's (the
// gateway itself is a loopback peer, so REST is checked before it).

func isLoopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func loopbackOnlyHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r.RemoteAddr) {
			http.Error(w, `{"code":7,"message":"queries are limited to loopback clients until access control is configured"}`, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func peerIsLoopback(ctx context.Context) error {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil && isLoopback(p.Addr.String()) {
		return nil
	}
	return status.Error(codes.PermissionDenied, "queries are limited to loopback clients until access control is configured")
}

func loopbackOnlyUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := peerIsLoopback(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func loopbackOnlyStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := peerIsLoopback(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
