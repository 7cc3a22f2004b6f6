// Package webhook is receiptd's HTTP ingest: POST /webhooks/{source}. It owns
// everything about a delivery that is the same for every provider — limiting
// and reading the body, the order of checks, deciding the delivery against
// its stream, the durable append, the answer, the metrics and the log line —
// and delegates what differs (verification and normalization) to a Provider,
// one per configured source, implemented in a subpackage per scheme
// (handlers/webhook/reewild, …).
//
// # Basics
//
// Build one Handler over the event store and the configured providers, and
// mount it:
//
//	h, err := webhook.New(store, []webhook.Provider{reewildProvider}, webhook.Options{
//		Logger:  logger,
//		Metrics: webhook.NewMetrics(registry),
//	})
//	…
//	h.Register(mux) // mux.Handle(webhook.Pattern, h)
//
// Each delivery goes through these steps, in this order; the first that
// fails answers:
//
//	unknown {source}                                  404
//	over the source's Options.SourceLimit             429 + Retry-After (the bucket's wait)
//	method other than POST                            405 (Allow: POST)
//	Content-Type not application/json or              415
//	  application/*+json (parameters allowed)
//	body over Options.MaxBodyBytes                    413
//	Provider.Verify on the raw bytes fails            401, no detail, nothing stored
//	body is not JSON at all                           400, nothing stored
//	Provider.Normalize fails (unknown event type,     200 {"status":"quarantined"}, appended once
//	  shape it cannot normalize)                        per body hash to quarantine-{source}
//	signature claimed by another delivery             401 (another stream) or 409 (another body
//	  (Normalized.Claim, see below)                     of the same stream), nothing appended
//	aggregate.Decide: duplicate                       200 {"status":"duplicate"}, nothing appended
//	aggregate.Decide: conflict (Reject policy)        409, nothing stored
//	append durable                                    200 {"status":"accepted","position":"…"}
//	store unavailable, closed, past the deadline,     503 + Retry-After, never 200
//	  or still contended after MaxAttempts
//	anything else (a stored event it cannot decode,   500, never 200
//	  a store error outside its contract)
//
// Bodies are JSON: {"status":…,"position":…} for a 200, {"error":…} with a
// fixed message per status otherwise (a 401 says only "unauthenticated").
// Each delivery is counted in Metrics and logged as one line (accepted
// and duplicate ones at debug level).
//
// Every 200 carries the Receiptd-Position header: the global position of the
// event the delivery is recorded as (for a duplicate, of the one recorded
// before). A 200 is only ever written after Store.Append returned nil, that
// is after the event is durable.
//
// The event appended is the v2 encoding of the fact (eventcodec.Encode:
// receipt.stage_recorded.v2, …): a deterministic id (EventID), the
// normalized fact as protobuf in Data, the provider's body exactly as
// received, zstd-compressed, in Body (so its signature can be checked
// again), and aggregate.Metadata in binary: source, provider event type,
// delivery id, received_at, verification scheme and key id, body SHA-256,
// dedupe and slot keys, the correction flag, and $correlationId and
// $causationId (both the event id: a webhook starts its own causal chain).
// Events written as v1 JSON by earlier versions are read as ever
// (eventcodec decodes both).
//
// A provider whose signature does not cover the whole body (Reusely signs
// only object_id and timestamp) names what it covers in Normalized.Claim.
// Before deciding such a fact the Handler claims the signature in the log
// (ClaimStream, aggregate.TypeSignatureClaimed, appended with expected
// revision "no stream"): the first delivery binds it to its stream and
// body for good, on every node sharing the log and across restarts, so a
// captured signature never carries a second body.
//
// # Caveats
//
// The read-decide-append runs under Options.StoreDeadline on a context that
// a client disconnect does not cancel: an append is finished, or fails by
// its deadline, rather than cut short. The Store must honor the context's
// deadline, as its contract requires.
//
// Deciding needs a stream's decision state, not its events: the revision,
// the dedupe keys (with the position of each one's event, the answer to a
// duplicate) and the slot keys. The Handler keeps it for the streams it
// recently decided on, up to Options.DecisionCacheBytes, fills it from the
// log on a miss (one read of the stream, its metadata decoded), advances it
// with every append, and catches up from the log whenever an append fails
// (another node on the same log moved the stream, or the outcome is
// unknown). Deliveries to one stream take turns (decide and append one at a
// time), so on one node they never race into wrong-revision retries;
// deliveries to different streams run concurrently, and the embedded
// store's group commit batches their appends. With several nodes on one
// KurrentDB, a node whose state is behind learns it from the wrong revision
// its append gets, catches up and decides again, at most
// Options.MaxAttempts times in all: the expected revision, not the cache,
// is what keeps two nodes from recording one fact twice.
//
// Handler.Reprocess runs a quarantine event through its source's current
// Provider (after an upgrade or a config fix) and, if it now normalizes,
// decides and appends the fact like a new delivery, with the metadata it
// arrived with; the quarantine event itself is never touched.
// Handler.Quarantined and Handler.ReprocessQuarantined (quarantine.go) read
// a source's quarantine stream and re-process its deliveries by position:
// they are what the API's ListQuarantined and ReprocessQuarantined serve.
//
// The body is read once into a pooled buffer and hashed once; a Provider
// decodes only the fields it needs, once, and that decoding is also what
// checks the body is JSON (json.Valid runs only when Normalize fails, to
// tell 400 from quarantine). The buffer is reused after the answer, so
// nothing may keep it (Provider.Normalize).
//
// Log lines never carry a secret, a signature header or an Authorization
// header: only the source, outcome, status, body SHA-256, event type,
// stream, position, the error (whose text providers keep free of secrets)
// and the remote address.
//
// This package may import aggregate, eventcodec and eventstore (the Store
// interface, never an adapter such as eventstore/bolt or eventstore/esdb),
// the Prometheus client and uuid. It never imports projections, handlers/api,
// gen, cmd, or a provider subpackage: providers import it.
package webhook
