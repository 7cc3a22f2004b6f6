package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/receiptd/receiptd/gen"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// NewGateway returns the REST handler of receiptd.v1 (routes in
// proto/receiptd/v1/receiptd_api.yaml, all under /v1/: ReceiptService,
// StatsService, AuditService). It is registered from conn, a client
// connection to the gRPC server, so every REST request is a gRPC call
// through that server and its interceptors.
//
// Server-streaming RPCs (the watches) answer newline-delimited JSON
// objects, {"result": …} each; the status and headers are sent as soon as
// the stream is established. Long routes (watches, audit, rebuild) are not
// cut by the HTTP server's read and write timeouts: see longRequests.
//
// Responses are JSON with lowerCamelCase field names and enum names, and
// every field is present, zeros included ("receiptsFailed": 0,
// "reconciled": false). Unknown fields in request bodies are ignored. The
// Authorization header is forwarded as the "authorization" metadata key;
// the "retry-after" and "www-authenticate" header metadata of an answer
// become the Retry-After and WWW-Authenticate HTTP headers.
//
// ctx is the gateway's lifetime context (the registration does not close
// conn; the caller owns it).
func NewGateway(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	if conn == nil {
		return nil, errors.New("api: new gateway: nil grpc.ClientConn")
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{
				EmitUnpopulated: true,  // zeros are visible
				UseProtoNames:   false, // lowerCamelCase JSON names
				UseEnumNumbers:  false, // "RECEIPT_STATUS_COMPLETED", not 2
			},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
		// The gateway itself always forwards Authorization as the
		// "authorization" metadata key; the default matcher adds only
		// "grpcgateway-"-prefixed copies of standard headers, and no
		// Grpc-Metadata-* header, so a REST client cannot set arbitrary
		// metadata the interceptors might trust.
		runtime.WithIncomingHeaderMatcher(runtime.DefaultHeaderMatcher),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(answerOpenStream),
	)
	if err := receiptdv1.RegisterReceiptServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register ReceiptService: %w", err)
	}
	if err := receiptdv1.RegisterStatsServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register StatsService: %w", err)
	}
	if err := receiptdv1.RegisterAuditServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register AuditService: %w", err)
	}
	return longRequests(mux, StreamWriteTimeout), nil
}

// answerOpenStream sends the HTTP status and headers of a REST stream as
// soon as the gRPC stream says it is established (StreamOpenHeader), so a
// watcher of a receipt that has no event yet gets its 200 at once rather
// than with the first change. The gateway calls it with a nil message when
// a stream starts; a stream that fails before it is established still gets
// its error's HTTP status.
func answerOpenStream(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
	if m != nil {
		return nil
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || len(md.HeaderMD.Get(StreamOpenHeader)) == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// StreamWriteTimeout bounds each write of a long REST answer (a watch's
// messages, an audit's or a rebuild's answer): see longRequests.
const StreamWriteTimeout = 30 * time.Second

// isLong reports whether r is for a route whose answer may take longer
// than the HTTP server's read and write timeouts: a watch streams for as
// long as its client stays, an audit or a rebuild replays the whole log.
func isLong(r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "v1" && (parts[1] == "receipts" || parts[1] == "users") && parts[3] == "watch":
		return true
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "v1" && parts[1] == "audit":
		return true
	case r.Method == http.MethodPost && len(parts) == 2 && parts[0] == "v1" && parts[1] == "rebuild":
		return true
	}
	return false
}

// longRequests lifts the HTTP server's whole-request deadlines from long
// routes (isLong): the server's WriteTimeout would cut a watch, and its
// ReadTimeout, once past, cancels the request's context. Instead, each
// write and flush of such an answer must finish within writeTimeout, so a
// client that stops reading is still dropped, while one that waits for
// the next change is not. Every other route keeps the server's timeouts.
func longRequests(next http.Handler, writeTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLong(r) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// Errors mean the writer cannot change deadlines (a test
		// recorder): then there are none to lift.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, timeout: writeTimeout}, r)
	})
}

// deadlineWriter sets a write deadline before every write and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *deadlineWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

// FlushError flushes the buffered answer (http.ResponseController.Flush).
func (w *deadlineWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Flush implements http.Flusher.
func (w *deadlineWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outgoingHeader maps response header metadata to HTTP headers: the access
// interceptor's retry-after (429) and www-authenticate (401) become those
// standard headers; any other key keeps the default Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	switch key {
	case "retry-after":
		return "Retry-After", true
	case "www-authenticate":
		return "WWW-Authenticate", true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// OpenAPIHandler serves the OpenAPI v2 document of receiptd.v1 (generated
// with the API, embedded as gen.OpenAPI) as application/json, with an ETag,
// to GET and HEAD. The server mounts it at /openapi.json.
func OpenAPIHandler() http.Handler {
	doc := bytes.Clone(gen.OpenAPI)
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
	})
}
