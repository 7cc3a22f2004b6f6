// Package esdbdouble is an in-process test double of the KurrentDB
// (EventStoreDB) Streams gRPC API: enough of a server for the real
// EventStore-Client-Go/v4 client, and so eventstore/esdb, to run against it
// in tests, with no container or package on the machine.
//
// # Basics
//
// A StreamsDouble holds one in-memory log and serves it on a loopback port:
//
//	d := esdbdouble.New(esdbdouble.Options{})
//	if err := d.Start(); err != nil { ... }
//	defer d.Close()
//	s, err := esdb.Open(ctx, d.URL(), esdb.Options{}) // esdb://127.0.0.1:PORT?tls=false
//
// It implements what the adapter uses, the way KurrentDB answers it:
//
//   - Streams.Append: expected revision (a revision, no-stream, any,
//     stream-exists); success answers the stream's revision and the position
//     of the append's last event; a mismatch answers
//     AppendResp.WrongExpectedVersion with the current revision, in both the
//     current and the 20.6.0 fields, which the client turns into its
//     ErrorCodeWrongExpectedVersion.
//   - Streams.Read of a stream, forwards and backwards, from a revision, the
//     start or the end, with a count; a stream never written answers
//     ReadResp.StreamNotFound, which the client turns into
//     ErrorCodeResourceNotFound.
//   - Streams.Read of $all, forwards (from a position, inclusive) and
//     backwards (before a position), with or without a stream-name or
//     event-type filter (prefixes or a regular expression).
//   - Streams.Read as a subscription to $all, filtered or not, from the
//     start, the end or after a position: a confirmation, the events already
//     in the log (catch-up), caught-up (with the time and the position it
//     caught up at, as KurrentDB 24.10 and later send it), then new events
//     as they are appended (live). A filtered subscription gets a checkpoint
//     every window × multiplier events scanned, the window being the
//     filter's max search window, or 32 (the server's read batch) for a
//     count window.
//   - ServerFeatures.GetSupportedMethods, which the client calls when it
//     connects to a single node.
//
// Every event is self-committed, as in KurrentDB: its commit and prepare
// positions are both its log position, a byte offset that grows by the size
// of each record (so positions are sparse, never 1, 2, 3). A fresh double
// holds a few system events ($-prefixed streams and types), as a fresh
// server does, which a reader of $all must skip.
//
// Stop drops every connection and the listener, as a crash or a network
// partition would, and keeps the log; Restart serves it again on the same
// port. DropAppendResponses makes the next appends commit and then fail
// with codes.Unavailable, as when a connection drops after the server
// committed: the client cannot tell whether its events were written.
//
// Tombstone deletes a stream for good, as the server does (receiptd's
// privacy key store tombstones a forgotten subject's key stream): a
// $streamDeleted event ends the stream, and reading it, appending to it or
// tombstoning it again fails with the server's stream-deleted exception,
// which the client reports as ErrorCodeStreamDeleted. The double never
// scavenges: the stream's events stay in $all, as on a server until its
// next scavenge.
//
// # Caveats
//
// Not implemented, and answered with codes.Unimplemented and a message
// naming what is missing, so that a test never passes on something the
// double only pretends to do: stream subscriptions, Delete (a soft delete),
// BatchAppend, resolving links, and stream metadata (any read or append of
// a "$$stream" metadata stream: $maxCount, $maxAge, truncation, ACLs).
// Persistent subscriptions, projections, users, operations and gossip are
// services the double does not serve (so no cluster discovery: connect to
// it with a single-node esdb:// URL). Also not implemented, silently:
// credentials (ignored), fell-behind, and the server's event-id cache: the
// double never recognises a retried append by its event ids, which is what
// a real server does once the id has left its in-memory cache or after a
// restart. eventstore/esdb must not rely on that cache, and its tests use the
// double to show it does not.
//
// TestNodeClient runs the official KurrentDB Node client against the double
// (testdata/nodecheck, pinned by its lockfile; CI installs it with npm ci),
// so that a second client, written by the server's authors, checks what the
// Go client does not look at.
//
// The log lives in memory and is lost with the process. The double listens
// on 127.0.0.1 only, in plain text unless Options.TLS is set.
//
// This package imports the client module's generated protobuf and gRPC
// code (protos/...), gRPC, protobuf and the standard library. It is used by
// tests only.
package esdbdouble
