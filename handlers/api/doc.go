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
// messages (convert.go). Every RPC that reads runs one skeleton (query and
// list in service.go: checks, source, bounded wait, read, convert), and
// every error becomes a gRPC status in one table (errors.go), matched with
// errors.Is, which has a row for every exported sentinel of the packages
// the API fronts (a test parses them and fails on one without a row).
//
// The same read side serves the history (ListReceiptEvents from the log
// through an EventLog given WithEventLog, ListUserLedger), and the watches
// (WatchReceipt, WatchUser: server streams that re-read a view whenever
// the read models say it may have changed, and send it when it did).
// NewStatsService serves the pipeline statistics and NewAuditService the
// administrative audit and rebuild, over a *projections.Admin, and the
// quarantine (ListQuarantined, ReprocessQuarantined) over a Quarantine
// given WithQuarantine: the *webhook.Handler that quarantined the
// deliveries. AuditReportFromProto and RebuildResultFromProto turn the
// audit's and the rebuild's answers back into projections' values for a
// client (receiptd audit/rebuild --server).
// NewBackupService streams a copy of the log (BackupService.Backup, gRPC
// only) from a Snapshotter: the embedded store's snapshots; it has none
// for a KurrentDB log (ErrBackupUnsupported).
//
// NewGateway returns the REST handler: a grpc-gateway mux registered from a
// *grpc.ClientConn to the gRPC server, so a REST request goes through the
// same server, interceptors (access control) included, as a gRPC one. The
// JSON it writes uses lowerCamelCase field names and shows every field,
// zeros included. Every request body is bounded (GatewayOptions,
// DefaultMaxBodyBytes); routes come from the generated OpenAPI document.
// OpenAPIHandler serves that document.
//
// Access control is one interceptor pair, NewAccess (auth.go), over one
// rule table (rules.go): each RPC declares the scopes that may call it and
// whether, and how, a user may call it for their own data; an RPC with no
// rule is refused. Credentials (credentials.go) authenticates API keys
// (stored as SHA-256 hashes, with scopes read:all and admin) and user JWTs
// (RS256/ES256, from a JWK Set or PEM keys; iss, aud, exp, nbf checked).
// With no Authenticator only loopback clients may call. The REST gateway
// reaches the server through a GatewayListener, the one connection on which
// the interceptor trusts x-forwarded-for for the client's address. Handlers
// of RPCs whose rule is UserOwner without an owner field call
// AuthorizeOwner with the owner of what they loaded.
//
// The gRPC server, its interceptors and listeners, reflection and the HTTP
// mux are wired in cmd/receiptd:
//
//	svc, err := api.NewReceiptService(views, []string{"reewild", "reap"}, api.WithEventLog(projections.NewHistory(store)))
//	access, err := api.NewAccess(api.AccessOptions{Authenticator: creds, Gateway: gwl, ...})
//	rec := api.Recovery{Logger: logger} // first: a panic is INTERNAL, not the end of the process
//	grpcServer := grpc.NewServer(grpc.ChainUnaryInterceptor(rec.Unary, access.Unary), grpc.ChainStreamInterceptor(rec.Stream, access.Stream))
//	receiptdv1.RegisterReceiptServiceServer(grpcServer, svc)
//	stats, err := api.NewStatsService(views, sources)
//	audit, err := api.NewAuditService(projections.NewAdmin(views, store), sources, api.WithQuarantine(webhookHandler))
//	go grpcServer.Serve(gwl) // gwl := api.NewGatewayListener(), beside the TCP listener
//	conn, err := grpc.NewClient("passthrough:///receiptd-gateway", grpc.WithContextDialer(gwl.DialContext), ...)
//	gw, err := api.NewGateway(ctx, conn, api.GatewayOptions{Access: access})
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
// the gateway (a GatewayListener connection); the REST client's address is
// the last entry of the "x-forwarded-for" metadata, which the gateway
// appends, and which the access interceptor believes on that connection
// only.
//
// Server streams through the gateway are newline-delimited JSON objects,
// {"result": …} per message and {"error": …} if the stream fails after
// its first message. The gateway lifts the HTTP server's whole-request
// timeouts from watches, audits and rebuilds and bounds each write with
// StreamWriteTimeout instead, but only once the caller has passed the
// access check and the request's body (bounded, DefaultMaxBodyBytes) has
// been read: a request that carries a body, takes one, or is long is
// checked with the Access given in GatewayOptions before a byte of its
// body is read, and a refusal closes the connection.
//
// The package imports aggregate, projections, eventstore (its sentinels and
// value types only, for the status table and the conversions),
// handlers/webhook (the quarantine's records and sentinels), gen,
// internal/ratelimit and the JWT libraries (golang-jwt, keyfunc/jwkset);
// never a store driver or cmd.
package api
