// Package adminclient is the client side of `receiptd audit`, `rebuild`
// and `backup` with --server: the flags naming a running receiptd (its
// gRPC address, an admin API key as a secret reference, TLS against the
// system's roots or a CA file) and the connection they make, which sends
// the key as "authorization: Bearer" with every call.
//
// It imports grpc and internal/secret only; cmd/receiptd's commands
// register the flags beside their own and print what the server answers.
package adminclient
