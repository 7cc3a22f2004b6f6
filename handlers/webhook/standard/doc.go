// Package standard is the Standard Webhooks (v1) provider: any sender that
// follows https://www.standardwebhooks.com becomes a source with a config
// entry and no new code. It verifies the spec's symmetric signature on the
// raw body and normalizes each delivery into an entity event for the
// aggregate. It implements webhook.Provider; the generic handler
// (handlers/webhook) does everything else.
//
// # Verification
//
// A delivery carries three headers: webhook-id (the message id, the same
// on every retry), webhook-timestamp (Unix seconds of the attempt) and
// webhook-signature, a space-separated list of "version,signature". The
// signed content is webhook-id "." webhook-timestamp "." the raw body; a
// "v1" signature is its HMAC-SHA256 in standard base64. Verify computes
// that HMAC under each active secret and passes if it equals any v1
// signature listed (hmac.Equal); other versions ("v1a", asymmetric) are
// ignored, so a sender can list several signatures during a rotation or
// alongside other schemes. webhook-timestamp must be within
// Config.Tolerance (default 5 minutes) of the time received, either way:
// an old capture cannot be replayed, and since the sender re-signs each
// retry with a fresh timestamp, retries still pass.
//
// Secrets are configured as the spec serializes them, "whsec_" and the
// base64 of the key, or as raw key bytes without that prefix (a base64
// string without "whsec_" is therefore taken as the key's text, not
// decoded; a signature made with the decoded key will not verify). The
// key id recorded is webhook.KeyID of the decoded key, the scheme Scheme,
// and the delivery id webhook-id. Sign makes a signature, for receiptctl
// and tests; it reproduces the spec's published test vector.
//
// Headers are checked strictly, so that the signed string splits one way
// only: exactly one webhook-id of 1 to 256 printable ASCII characters
// without '.', as the spec asks senders to ensure; exactly one
// webhook-timestamp of decimal digits without a sign or leading zero;
// webhook-signature may come as several header lines, whose entries are
// all candidates.
//
// # What the signature covers and leaves open
//
// It covers the body, the message id and the attempt time: nothing in a
// delivery can be changed without the secret, and a capture replays only
// within the tolerance, where the aggregate answers it as a duplicate. It
// does not say anything about order: the spec's payload timestamp (when
// the event happened) orders statuses, not arrival. It is symmetric: whoever
// holds the secret (the sender, receiptd, anything that reads the config)
// can sign. The asymmetric "v1a" (ed25519) scheme is not supported.
//
// # Normalization
//
// Every event type maps the same way; the type is the body's "type" as
// sent, there are no unknown types:
//
//	{type}  {category}-{source}.{entity id}  entity.event_recorded.v1  EntityEventRecorded  slot "webhook-id:{webhook-id}"  Correct
//
// The category is Config.Category (default DefaultCategory, "entity"):
// name it after what the sender's ids identify ("order", "customer"), and
// give senders whose ids name different kinds of entity one source per
// kind, since one source's entities share one id space. The entity id is
// read at Config.EntityField (default "data.id"; a string, or a number's
// text, of at most 256 printable bytes). The EntityEventRecorded has Kind
// the category, EventType the type as sent, OccurredAt the body's
// top-level "timestamp" (RFC 3339, as the spec recommends; omitted if
// absent or unparsable), and, when Config.StatusField (default
// "data.status") holds a non-empty string, Status as sent with StatusAt the
// same timestamp. webhook-timestamp is the time of the attempt, not of the
// event, so it never orders statuses: a status whose payload has no
// timestamp ranks below every timed one. No amount, currency or user is
// derived (the spec leaves the payload open); the raw body, which every
// fact keeps, holds the rest.
//
// The dedupe key is "webhook-id:{webhook-id}:{body SHA-256}" and the slot
// "webhook-id:{webhook-id}" with the Correct policy: a retry (same id, same
// body) is a duplicate, 200 with nothing appended, and a different body
// under an id already recorded in the stream is appended flagged as a
// correction, not silently taken for a retry (the spec promises one body
// per id, so that is an anomaly worth seeing). The check is per stream, so
// an id reused for another entity is simply another event.
//
// # What is required
//
// A body that is not a JSON object, no "type" string (or one over 128
// bytes or holding a control character), or no entity id at the configured
// path is aggregate.ErrUnnormalizable, quarantined by the handler (a body
// that is not JSON at all is answered 400 instead).
//
// # Caveats
//
// The body is decoded once into its top-level members and, on the way to
// the configured fields, the objects that hold them; nothing else is
// decoded. Members are read as the sender's JavaScript (JSON.parse) reads
// them (jsonfield.Object): keys match exactly, a repeated key takes its
// last value. Field paths name keys separated by '.', so a key that itself
// contains '.' cannot be named.
//
// This package imports handlers/webhook (for the Provider types) and
// aggregate. It never imports eventstore, and it knows nothing of HTTP
// statuses, stores or metrics.
package standard
