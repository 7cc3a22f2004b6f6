package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/receiptd/receiptd/gen"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// NewGateway returns the REST handler of receiptd.v1 (routes in
// proto/receiptd/v1/receiptd_api.yaml, all under /v1/). It is registered
// from conn, a client connection to the gRPC server, so every REST request
// is a gRPC call through that server and its interceptors.
//
// Responses are JSON with lowerCamelCase field names and enum names, and
// every field is present, zeros included ("receiptsFailed": 0,
// "reconciled": false). Unknown fields in request bodies are ignored. The
// Authorization header is forwarded as the "authorization" metadata key.
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
	)
	if err := receiptdv1.RegisterReceiptServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("api: new gateway: register ReceiptService: %w", err)
	}
	return mux, nil
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
