// Package esdb is receiptd's KurrentDB (EventStoreDB) event store: an
// eventstore.Store over a KurrentDB node or cluster, through the gRPC client
// of github.com/EventStore/EventStore-Client-Go/v4. It is the only package
// of receiptd that imports that module (its test double, esdbdouble, imports
// the module's generated protobuf code).
//
// # Basics
//
// Open a connection string and use the Store through eventstore.Store:
//
//	s, err := esdb.Open(ctx, "esdb://node1:2113?tls=false", esdb.Options{})
//	...
//	defer s.Close()
//	res, err := s.Append(ctx, stream, eventstore.NoStream, event)
//
// The connection string is the client's (esdb://, or esdb+discover:// for
// DNS discovery; several hosts for gossip seeds; user:password@ for
// credentials; tls=false for an insecure node, tlsCAFile=… for a private
// CA). kurrentdb:// and kurrent:// are accepted as spellings of esdb://.
//
// Streams map one to one; revisions are the server's stream revisions and
// positions its $all commit and prepare positions. An append maps the
// expected revision exactly (eventstore.NoStream, Any, Exact(n) become the
// client's NoStream, Any, Revision(n)), sends each event with its own id
// (aggregate.Event.ID, a UUID), its type, its data and its metadata, and
// returns once the server has acknowledged it. A JSON event without a Body
// (a v1 event) is sent with JSON content type and its Data as the data; an
// event with a Body or binary Data (a v2 event) with content type
// application/octet-stream and, as the data, a frame that keeps Data and
// Body apart byte for byte (see frame.go). A refused
// expected revision is an *eventstore.WrongRevisionError whose Actual the
// Store reads back from the stream, since the client reports the current
// revision only in its message text.
//
// ReadAll, Head and Subscribe see only receiptd's part of $all: events of
// streams whose category (the part before the first "-") is one of
// DefaultCategories or Options.Categories, and never a system event ($-prefixed
// stream or type). Subscribe asks the server for that filter (a stream-name
// prefix filter), so a node serving other applications does not ship their
// events; ReadAll and Head, which the client cannot filter on the server,
// read $all in pages and skip the rest themselves. Positions always come from
// the events themselves, so the gaps a filter leaves do not matter.
//
// Subscribe catches up from its position and then follows live, as one
// server subscription. When that subscription drops (the node restarts, the
// network fails, a leader changes, the server drops a subscriber too slow
// for its live buffer), Subscribe resubscribes after the last event it has
// seen (delivered, or skipped as a system event), with exponential backoff,
// until its context ends or the Store closes: a caller sees no gap and no
// repeat across reconnects. The server's checkpoints are not used as resume
// points; the position kept, commit and prepare, is always an event's.
//
// Every call has a deadline: the caller's, or Options.CallTimeout when that
// comes sooner. A call that cannot reach the server in time fails with
// eventstore.ErrUnavailable (and context.DeadlineExceeded); when the
// caller's own context ends first, the error wraps the context's error, and
// for Append the outcome is then unknown.
//
// # Caveats
//
// Idempotency does not rest on the server's event-id cache. KurrentDB
// recognises a retried append whose events carry the ids of an append it
// has just written and answers it with the first write's result, but it
// keeps those ids in memory only, for a bounded number of recent writes: a
// node restart, a leader election or enough traffic in between forgets them,
// and with eventstore.Any the check is best effort even then. A retry that
// relied on it would write the events twice. receiptd never retries an
// ambiguous append blindly: after a failure whose outcome is unknown
// (a context that ended, eventstore.ErrUnavailable) the caller re-reads the
// stream, lets the aggregate decide (a delivery already in the stream is a
// duplicate), and appends with the expected revision it just read, so that
// the store refuses a second copy with ErrWrongRevision. The event ids are
// deterministic anyway, so the cache, when it does hit, agrees.
//
// The client does not take a context for finding a node: when a node cannot
// be reached, a call can wait in the client's discovery, and a client whose
// discovery failed stays closed. The Store therefore runs each client call
// in its own goroutine and returns when the call's deadline passes; it lets
// only one call at a time through a client that has not yet reached the
// server; it limits the client's own discovery to one attempt per call unless
// the connection string sets maxDiscoverAttempts, and gossipTimeout to
// CallTimeout unless set; and it replaces a client whose connection was lost
// with a new one. A call abandoned at its deadline may still complete on the
// server.
//
// The server answers an append with the position of its last event, which
// is AppendResult.Position; only when it answers with no position does the
// Store read the last event back from the stream for it. When a server
// reports no position for events read from a stream (older EventStoreDB
// versions did not), ReadStream returns them at Start; events read from
// $all always carry theirs.
//
// Reading $all needs the $all read permission (an admin user on a secured
// cluster); Open checks it with one read.
//
// This package imports eventstore, aggregate, the client module and gRPC; it
// never imports projections or handlers.
package esdb
