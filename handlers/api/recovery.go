package api

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recovery is the interceptor pair that keeps a panic in a handler (or in
// an interceptor chained after it) from killing the process: REST goes
// through the same gRPC server, and ingest lives in the same process, so
// one panicking query would otherwise stop webhooks too. The panic is
// logged with its stack, and the call answered INTERNAL ("<RPC>: internal
// error"; over REST, 500). Chain it first, before the access interceptor.
type Recovery struct {
	// Logger gets one error line per panic; slog.Default() if nil.
	Logger *slog.Logger
	// OnPanic, if set, is called once per recovered panic (a metric).
	OnPanic func(fullMethod string)
}

// Unary is the unary server interceptor.
func (r Recovery) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, r.recovered(ctx, info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

// Stream is the streaming server interceptor.
func (r Recovery) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = r.recovered(ss.Context(), info.FullMethod, p)
		}
	}()
	return handler(srv, ss)
}

func (r Recovery) recovered(ctx context.Context, method string, p any) error {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	log.ErrorContext(ctx, "api: a handler panicked; answered INTERNAL", "method", method, "panic", p, "stack", string(debug.Stack()))
	if r.OnPanic != nil {
		r.OnPanic(method)
	}
	return status.Error(codes.Internal, opName(method)+": internal error")
}
