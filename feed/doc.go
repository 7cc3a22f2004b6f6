// Package feed is receiptd's downstream feed: integration events derived
// from the log by the read models ("receipt R completed for user U with
// 74.28 points", "U's balance changed"), read by subscribers (gRPC
// FeedService.Subscribe, REST GET /v1/feed as Server-Sent Events) and
// pushed to configured destinations as Standard Webhooks requests.
//
// # Basics
//
// An Event is one fact the read models resolved, of one of Kinds. Each has
// a feed position (Position): the commit position of the log event that
// caused it, shifted left by IndexBits, plus its index among the events that
// log event caused. Positions are strictly increasing, never reused, and
// the same after a rebuild; a consumer resumes after the last position it
// processed. Each has an id derived from what it is about (EventID), so a
// receiver dedupes by it: a receipt's receipt.completed.v1 has one id
// forever. An event carries the resolved view (the receipt, balance or
// entity, as the read models hold it: View) and never a raw body or a
// secret; the API renders it as the query API renders that view.
//
// The events of a receipt come from ReceiptEvents, a pure function of the
// receipt's view before and after one fact: a receipt yields
// receipt.completed.v1 exactly once, whatever order its stages,
// duplicates and corrections arrive in (aggregate's property test checks
// it). The read models (projections) derive the others and store every
// event in the transaction that applies the log event, so a crash never
// loses or repeats one.
//
// A Source is where events are read from: ReadFeed after a position, and
// WaitFeed for more. Subscribe runs one subscriber over a Source: catch-up,
// then live, filtered (Filter), with checkpoint messages while filtered-out
// events pass. It reads with its own cursor: a slow subscriber never holds
// up the read models or ingest. internal/feeddouble is an in-memory Source
// for tests.
//
// Pusher delivers the feed to destinations (Destination), one request in
// flight per destination, in position order, signed with the destination's
// secret (Standard Webhooks v1, webhook-id = the event's id), retried with
// exponential backoff and jitter, paused after a number of consecutive
// failures (its event then goes to the dead letters), resumable and
// rewindable by an admin. Its progress per destination is kept in a small
// bbolt file of its own (Progress), advanced only on a 2xx.
//
// # Caveats
//
// Feed positions are log commit positions times 16: on the embedded store
// they count events (×16); on KurrentDB they are byte offsets (×16).
// Compare a feed position with a log position through LogPosition.
//
// With several receiptd processes on one KurrentDB log, each derives the
// same feed; configure destinations on one of them only, or each pushes
// every event (receivers dedupe by id, but it is wasted work).
//
// It imports aggregate, handlers/webhook/signer (the Standard Webhooks
// signature) and the Prometheus client; never projections, handlers/api,
// gen or cmd.
package feed
