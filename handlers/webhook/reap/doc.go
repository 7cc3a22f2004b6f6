// Package reap is the Reap (compliance) webhook provider: it verifies the
// RSA-SHA512 reap-signature header with Reap's public keys and normalizes
// Reap's account_status_change events into facts for the aggregate. It
// implements webhook.Provider; the generic handler (handlers/webhook) does
// everything else.
//
// # Verification
//
// Reap signs each delivery with its RSA private key: reap-signature is the
// base64 RSA-SHA512 PKCS #1 v1.5 signature. Standard and URL-safe base64,
// padded or not, are accepted. Each environment has its own key (the seed
// publishes a staging and a production key, both 2048-bit, kept in
// examples/reap/ as reap-staging.pem and reap-production.pem) and Reap
// announces rotations to new 4096-bit keys, so a source takes several
// public keys at once (MaxKeys); ParsePublicKeys reads them from PEM,
// "PUBLIC KEY" (PKIX, Reap's form) or "RSA PUBLIC KEY" (PKCS #1) blocks. The
// key id recorded is KeyID: "sha256:" and the first 8 hex digits of the
// SHA-256 of the key's PKIX DER (staging sha256:0d2501a7, production
// sha256:a44f699f). The scheme has no timestamp or nonce: a captured
// delivery replays forever, and the aggregate's dedupe on data.eventId is
// what keeps it from counting twice. Sign makes a signature, for receiptctl
// and tests.
//
// # Which bytes are signed
//
// The seed contradicts itself. Its Node.js example verifies
// JSON.stringify(req.body), the body parsed and re-serialized; its Python
// example verifies json.dumps(payload, separators=(',', ':')), another
// re-serialization; its troubleshooting section says to verify "the raw
// JSON payload (not parsed object)". A sender that signs
// JSON.stringify(payload) and sends that same string satisfies all three
// for most bodies (ASCII text, no unusual numbers), but any proxy or client that re-formats the body
// breaks the raw reading. So Verify tries, with every key whose size is the
// signature's length:
//
//  1. the raw body, exactly as received: Verification.Scheme SchemeRaw
//     ("rsa-sha512-raw");
//  2. if that fails, the body's compact JSON form, what
//     JSON.stringify(JSON.parse(body)) returns in a JavaScript engine
//     (CompactJSON): SchemeCompactJSON ("rsa-sha512-compact-json"). This is
//     skipped when the body is not JSON, or already is its own compact form
//     (the common case: a JavaScript sender posting what it signed), since
//     it could not match where step 1 did not.
//
// A delivery therefore costs at most two SHA-512 hashes of the body, one
// CompactJSON pass and 2 × (number of keys) RSA verifications, and only
// keys of the signature's size are tried. The Scheme recorded in every
// event's metadata says which reading matched.
//
// CompactJSON is not json.Compact. json.Compact only drops whitespace, which
// makes it JSON.stringify's equal exactly when the body is already in
// JavaScript's canonical form apart from whitespace. It differs when the
// body has numbers JavaScript rewrites (1.0 → 1, 1e2 → 100, 0.10 → 0.1,
// -0 → 0, 1e21 → 1e+21, 0.0000001 → 1e-7, integers past 2⁵³ rounded, 1e400
// → null), escapes JavaScript does not keep ("\u00e9" → "é", "\/" → "/",
// "\u0041" → "A", "\u001F" → "\u001f", "\u0008" → "\b"), a key twice (the
// first position with the last value) or array-index keys ("0", "1", …,
// which JavaScript enumerates first, in numeric order). CompactJSON does
// all of this; testdata/stringify holds vectors produced by Node.js, and a
// test cross-checks random documents with node when it is installed.
// What CompactJSON does not reproduce, so that only the raw reading can
// match: bodies that are not UTF-8 (a JavaScript sender cannot produce
// one), nesting deeper than 10000, and the Python example's
// json.dumps(ensure_ascii=True), which escapes every non-ASCII character
// and writes 1e2 as 100.0: a Python-signed body with non-ASCII text or such
// numbers verifies only if sent exactly as signed. A third candidate would
// raise the cost of every forged delivery by half for a sender the seed
// does not describe.
//
// # Normalization
//
//	eventType              stream                            type                      data
//	account_status_change  account-{source}.{data.entityId}  entity.event_recorded.v1  EntityEventRecorded, kind "account"
//
// The EntityEventRecorded's EventType is account_status_change, its Status
// data.status as sent (APPROVED, PENDING, REJECTED), its OccurredAt
// data.timestamp, and its StatusAt data.timestamp too when there is a
// status. The attributes, by Reap's field names, are eventName,
// message, moderationComment, reviewRejectType (FINAL or RETRY),
// rejectLabels (an array's elements joined by ", "), requirementId and slug;
// absent, null, empty or non-scalar ones are left out, and each is cut to
// 1024 bytes (the raw body, kept in full, has the rest).
//
// The dedupe key is "event:" and data.eventId: a retry of one event is a
// duplicate even if it was re-serialized or re-signed. Without a usable
// eventId (absent, not a string or number, empty, longer than 256 bytes or
// with control characters) it is "body:" and the SHA-256 of the body's
// compact JSON form (of the raw body if it has none, as when it is not
// UTF-8): two bodies with one JSON value are one delivery, so a re-formatted
// retry, or a replay re-formatted to pass under a compact-JSON signature, is
// a duplicate. BodySHA256, in the data and the metadata, stays the raw
// body's. There is no slot key: every status change is its own fact, never
// a correction of another. The eventId is also recorded as the delivery id.
//
// # Status order
//
// Reap does not promise delivery order and retries with backoff, so an old
// status may arrive after a new one. The aggregate records both; the entity
// projection shows the status with the greatest StatusAt, whatever the
// arrival order. That is why StatusAt is taken only from the provider's
// data.timestamp, never from the time of receipt, and why a timestamp that
// is present but cannot be read makes the delivery unnormalizable
// (quarantined, for a later version to re-process) instead of being
// dropped or guessed. Timestamps are RFC 3339 as the seed shows them
// ("2024-03-20T10:00:00Z"; any fraction, as toISOString writes
// "2024-03-20T10:00:00.000Z"; a zone as Z, ±hh:mm or ±hhmm), the same
// without a zone (read as UTC), or Unix time as a number of integral value
// or a string of digits: seconds below 10¹¹, milliseconds from there
// (10¹¹ seconds is in the year 5138 and 10¹¹ milliseconds in March 1973, so
// no plausible time is ambiguous).
//
// A delivery with no timestamp (absent, null or "") is still recorded, with
// no StatusAt: the projection ranks a status without a time below every
// status with one, and among those without, the later in the log wins.
// Such a status can therefore be hidden by an older timestamped one; the
// raw body is kept, and the timeline shows it.
//
// # What is required
//
// An eventType other than account_status_change is aggregate.ErrUnknownEvent.
// No eventType string, no data object, no data.entityId (a string or a
// number, of at most 256 printable bytes), a data.status that is not
// a string, or a data.timestamp that cannot be read is
// aggregate.ErrUnnormalizable. Both are quarantined by the handler. A body
// that is not JSON at all is ErrUnnormalizable too; the handler, finding it
// invalid, answers 400 instead.
//
// The body is read as JSON.parse reads it, so that the fact is a function of
// the JSON value a compact-JSON signature covers and a body re-serialized
// under such a signature cannot name another entity, event or status (a
// fuzz test checks that a body and its compact form normalize alike): keys
// are matched exactly (case-sensitive, where encoding/json's struct
// decoding would not be), a repeated key takes its last value, and a number
// is taken by its value as JavaScript prints it, not by its spelling (an
// entityId of 42.0 or 4.2e1 is "42"; one past 2⁵³ is rounded as
// JavaScript rounds it).
//
// # Caveats
//
// The body is decoded once into maps of raw JSON values (the top level and
// data); nothing else is decoded. Verification over the compact form
// re-encodes the whole body once, only when the raw reading fails, and so
// does a dedupe on the body's value, only when there is no eventId.
//
// This package imports handlers/webhook (for the Provider types) and
// aggregate. It never imports eventstore, and it knows nothing of HTTP
// statuses, stores or metrics.
package reap
