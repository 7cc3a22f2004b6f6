// Package api serves receiptd's read models over gRPC (receiptd.v1
// ReceiptService) and, through grpc-gateway, over REST.
//
// # Basics
//
// NewReceiptService implements the generated receiptdv1.ReceiptServiceServer
// (receipts, user balances, entities) over a Reader, the read side that
// *projections.DB implements. It validates requests (ids, entity kinds, page
// sizes), resolves ?source= (empty means the default, the first configured
// source; an unknown one is NOT_FOUND), waits for min_position with a bounded
// wait, and converts the aggregate and projections views to the receiptd.v1
// messages (convert.go). Every error from the read side becomes a gRPC status
// in one table (errors.go), matched with errors.Is.
//
// NewGateway returns the REST handler: a grpc-gateway mux registered from a
// *grpc.ClientConn to the gRPC server, so a REST request goes through the
// same server, interceptors (access control) included, as a gRPC one. The
// JSON it writes uses lowerCamelCase field names and shows every field,
// zeros included. OpenAPIHandler serves the generated OpenAPI document.
//
// The gRPC server, its interceptors and listeners, reflection and the HTTP
// mux are wired in cmd/receiptd:
//
//	svc, err := api.NewReceiptService(reader, []string{"reewild", "reap"})
//	grpcServer := grpc.NewServer(...)
//	receiptdv1.RegisterReceiptServiceServer(grpcServer, svc)
//	conn, err := grpc.NewClient(grpcAddr, ...)
//	gw, err := api.NewGateway(ctx, conn)
//	httpMux.Handle("/v1/", gw)
//	httpMux.Handle("/openapi.json", api.OpenAPIHandler())
//
// # Caveats
//
// Decimals (points, CO2e, amounts) are decimal strings. Counts are int32,
// so JSON numbers; log positions are uint64, so JSON strings, as the proto3
// JSON mapping renders 64-bit integers.
//
// The gateway forwards the HTTP Authorization header as the "authorization"
// gRPC metadata key (exactly once). Because REST reaches the gRPC server
// over a connection from this process, the gRPC peer of a REST request is
// the gateway's own (loopback) address; the REST client's address is the
// last entry of the "x-forwarded-for" metadata, which the gateway appends.
//
// The package imports aggregate, projections and gen; never eventstore, a
// store driver or cmd.
package api
