// Package eventstore defines the log that receiptd is built on: the Store
// interface, its positions and revisions, and the errors every adapter returns.
//
// # Basics
//
// A Store holds streams of events. A stream is named "{category}-{source}.{id}"
// (see aggregate.StreamID) and its events are numbered by revision from 0.
// Every event also has a global Position in the store's single total order
// ($all). Appends are conditional on the stream's current revision, which is
// how concurrent writers of one stream are serialised without locks.
//
// Adapters live in subpackages: eventstore/bolt (embedded, the default) and
// eventstore/esdb (KurrentDB/EventStoreDB). eventstore/storetest is the
// conformance suite every adapter's tests run.
//
// # Caveats
//
// The store does not deduplicate by event id. Idempotency is decided by the
// aggregate from the stream it loaded (see aggregate.Decide); a retried append
// after an ambiguous failure must re-read the stream first.
//
// This package may import aggregate (for the event envelope) and nothing else
// of receiptd; an adapter never imports projections or handlers.
package eventstore
