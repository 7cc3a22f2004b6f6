package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/receiptd/receiptd/gen"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// GatewayOptions configure NewGateway. The zero value is usable.
type GatewayOptions struct {
	// Access, if set, checks a request's credentials before the gateway
	// reads its body or lifts a deadline (see NewGateway). The interceptor
	// on the gRPC server stays the authority; without Access a request is
	// judged there only, after its body is read (tests, and servers built
	// without access control).
	Access *Access
	// MaxBodyBytes bounds every request body: beyond it the answer is 413
	// and the connection is closed. DefaultMaxBodyBytes if 0.
	MaxBodyBytes int64
	// WriteTimeout bounds each write of a long answer (see longRequests);
	// StreamWriteTimeout if 0.
	WriteTimeout time.Duration
	// Logger gets the gateway's own errors; slog.Default() if nil.
	Logger *slog.Logger
}

// DefaultMaxBodyBytes is the default bound of a REST request body. The
// largest body the API takes is a RebuildRequest or a
// ReprocessQuarantinedRequest: a few dozen bytes.
const DefaultMaxBodyBytes = 64 << 10

// NewGateway returns the REST handler of receiptd.v1 (routes in
// proto/receiptd/v1/receiptd_api.yaml, all under /v1/: ReceiptService,
// StatsService, AuditService). It is registered from conn, a client
// connection to the gRPC server, so every REST request is a gRPC call
// through that server and its interceptors.
//
// Before the generated handler reads anything, each request goes through
// these steps, in order (the route table comes from the embedded OpenAPI
// document, gen.OpenAPI, so a new route is covered without an edit here):
//
//  1. Its body is bounded by o.MaxBodyBytes (413 beyond).
//  2. A request for a route that takes a body (POST /v1/rebuild, POST
//     /v1/quarantine/reprocess), for a long route (below), or that carries
//     a body at all is checked against the access rules with o.Access
//     (authorizeHTTP): refused (401, 403, 429), it is answered before a
//     byte of its body is read, with Connection: close, and the server
//     does not wait for the rest of the body.
//  3. Its body is read in full, within the HTTP server's read deadline.
//  4. Only then, for a long route, the server's deadlines are lifted.
//
// Server-streaming RPCs (the watches) answer newline-delimited JSON
// objects, {"result": …} each; the status and headers are sent as soon as
// the stream is established. The feed (GET /v1/feed) answers Server-Sent
// Events instead (serveFeed). Long routes (the server-streaming watches,
// audit and rebuild) are not cut by the HTTP server's read and write
// timeouts: see liftDeadlines.
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
func NewGateway(ctx context.Context, conn *grpc.ClientConn, o GatewayOptions) (http.Handler, error) {
	if conn == nil {
		return nil, errors.New("api: new gateway: nil grpc.ClientConn")
	}
	switch {
	case o.MaxBodyBytes < 0:
		return nil, fmt.Errorf("api: new gateway: negative MaxBodyBytes %d", o.MaxBodyBytes)
	case o.MaxBodyBytes == 0:
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = StreamWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	routes, err := gatewayRoutes()
	if err != nil {
		return nil, fmt.Errorf("api: new gateway: %w", err)
	}
	g := &gateway{o: o, routes: routes}
	g.mux = runtime.NewServeMux(
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
		// No POST-with-a-form fallback to GET routes: the mux would parse
		// the form (read the body) before any check.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithMiddlewares(g.guard),
		runtime.WithErrorHandler(g.answerError),
	)
	if err := receiptdv1.RegisterReceiptServiceHandler(ctx, g.mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register ReceiptService: %w", err)
	}
	if err := receiptdv1.RegisterStatsServiceHandler(ctx, g.mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register StatsService: %w", err)
	}
	if err := receiptdv1.RegisterAuditServiceHandler(ctx, g.mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register AuditService: %w", err)
	}
	if err := receiptdv1.RegisterPrivacyServiceHandler(ctx, g.mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register PrivacyService: %w", err)
	}
	if err := g.registerFeed(ctx, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: %w", err)
	}
	return g, nil
}

// gateway is the REST handler: the grpc-gateway mux behind the body bound
// and the guard.
type gateway struct {
	o      GatewayOptions
	mux    *runtime.ServeMux
	routes map[string]route
}

// route is what the gateway knows of one REST route.
type route struct {
	rpc  string // full gRPC method name
	body bool   // the request message comes from the body
	long bool   // the answer may outlast the HTTP server's timeouts
}

// longUnary are the unary RPCs whose answers may take longer than the HTTP
// server's timeouts: an audit or a rebuild replays the whole log. Every
// server-streaming RPC is long as well.
var longUnary = map[string]bool{
	receiptdv1.AuditService_Audit_FullMethodName:   true,
	receiptdv1.AuditService_Rebuild_FullMethodName: true,
	// An export reads the whole log.
	receiptdv1.PrivacyService_ExportSubject_FullMethodName: true,
}

// gatewayRoutes reads the route table from the OpenAPI document generated
// with the gateway (gen.OpenAPI): key "METHOD /v1/x/*/y" (routeKey).
func gatewayRoutes() (map[string]route, error) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				In string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(gen.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("routes from the OpenAPI document: %w", err)
	}
	out := map[string]route{}
	for path, ops := range doc.Paths {
		for verb, op := range ops {
			svc, name, ok := strings.Cut(op.OperationID, "_")
			if !ok {
				return nil, fmt.Errorf("route %s %s: operationId %q is not Service_Method", verb, path, op.OperationID)
			}
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("receiptd.v1." + svc + "." + name))
			md, isMethod := d.(protoreflect.MethodDescriptor)
			if err != nil || !isMethod {
				return nil, fmt.Errorf("route %s %s: no RPC receiptd.v1.%s.%s", verb, path, svc, name)
			}
			rt := route{rpc: "/receiptd.v1." + svc + "/" + name}
			rt.long = md.IsStreamingServer() || longUnary[rt.rpc]
			for _, p := range op.Parameters {
				rt.body = rt.body || p.In == "body"
			}
			out[routeKey(strings.ToUpper(verb), path)] = rt
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the OpenAPI document has no routes")
	}
	return out, nil
}

// routeKey is "METHOD /v1/x/*/y": the path template with every variable
// segment ("{receiptId}" in OpenAPI, "{receipt_id=*}" from a
// runtime.Pattern) as "*", and a custom verb kept ("/v1/destinations/*:pause").
func routeKey(method, template string) string {
	segs := strings.Split(template, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			verb := ""
			if j := strings.LastIndexByte(s, '}'); j >= 0 {
				verb = s[j+1:]
			}
			segs[i] = "*" + verb
		}
	}
	return method + " " + strings.Join(segs, "/")
}

// ServeHTTP bounds the request's body and hands the request to the mux.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, g.o.MaxBodyBytes)
	}
	g.mux.ServeHTTP(w, r)
}

// guard runs for every request the mux matched a route for, before the
// generated handler: steps 2 to 4 of NewGateway.
func (g *gateway) guard(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx := r.Context()
		pat, _ := runtime.HTTPPattern(ctx)
		rt, ok := g.routes[routeKey(r.Method, pat.String())]
		if !ok { // the mux matched a route the OpenAPI document lacks
			g.o.Logger.ErrorContext(ctx, "api: gateway: a route missing from the OpenAPI document; refused", "method", r.Method, "pattern", pat.String())
			g.refuse(w, r, status.Error(codes.Internal, "internal error"))
			return
		}
		hasBody := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
		if g.o.Access != nil && (rt.body || rt.long || hasBody) {
			if err := g.o.Access.authorizeHTTP(w, r, rt.rpc); err != nil {
				g.refuse(w, r, err)
				return
			}
		}
		if hasBody {
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
					g.refuse(w, r, &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge,
						Err: status.Errorf(codes.InvalidArgument, "%s: request body larger than %d bytes", opName(rt.rpc), mbe.Limit)})
					return
				}
				if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
					g.refuse(w, r, &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestTimeout,
						Err: status.Errorf(codes.DeadlineExceeded, "%s: the request body did not arrive in time", opName(rt.rpc))})
					return
				}
				g.refuse(w, r, status.Errorf(codes.InvalidArgument, "%s: reading the request body: %v", opName(rt.rpc), err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
		}
		if rt.long {
			w = liftDeadlines(w, g.o.WriteTimeout)
		}
		next(w, r, params)
	}
}

// answerError is the gateway's answer to an error: runtime's default
// mapping of gRPC codes to HTTP statuses, except for RESOURCE_EXHAUSTED
// without a RetryInfo detail. The access interceptor's rate limits always
// send RetryInfo (and Retry-After), and stay 429; without it the code
// comes from a message size limit ("received message larger than max",
// "trying to send message larger than max") on either end of the
// gateway's connection: an answer this server cannot deliver, so 500,
// logged, and not the 429 a client would retry.
func (g *gateway) answerError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted && !hasRetryInfo(st) {
		g.o.Logger.ErrorContext(ctx, "api: gateway: an answer over a gRPC message size limit", "path", r.URL.Path, "err", st.Message())
		err = &runtime.HTTPStatusError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

func hasRetryInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

// refuse answers err (as the gateway answers a gRPC error) without reading
// the rest of the request's body, and ends the connection at once: no
// waiting for a body trickling in, no draining it.
func (g *gateway) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if r.ProtoMajor == 1 {
		// HTTP/2 resets the stream alone: the connection's other
		// requests go on.
		w.Header().Set("Connection", "close")
	}
	_, out := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, out, w, r, err)
	// After the answer is written, net/http would read up to 256 KiB of
	// an unread body, waiting for a slow client as long as the read
	// deadline lets it: a deadline in the past ends that. (An error means
	// the writer has no deadlines, such as a test recorder.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
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
// messages, an audit's or a rebuild's answer) by default: see
// liftDeadlines.
const StreamWriteTimeout = 30 * time.Second

// liftDeadlines lifts the HTTP server's whole-request deadlines from a
// long route's request, whose body has been read and whose caller has
// been checked: the server's WriteTimeout would cut a watch, and its
// ReadTimeout, once past, cancels the request's context. Instead, each
// write and flush of the answer must finish within writeTimeout, so a
// client that stops reading is still dropped, while one that waits for
// the next change is not. Every other route keeps the server's timeouts.
func liftDeadlines(w http.ResponseWriter, writeTimeout time.Duration) http.ResponseWriter {
	rc := http.NewResponseController(w)
	// Errors mean the writer cannot change deadlines (a test recorder):
	// then there are none to lift.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return &deadlineWriter{ResponseWriter: w, rc: rc, timeout: writeTimeout}
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
