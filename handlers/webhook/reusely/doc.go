// Package reusely is the Reusely (trade-in offers) webhook provider: it
// verifies the Authorization signature of a delivery against the signed
// pair its body carries and normalizes Reusely's two offer events into
// facts for the aggregate. It implements webhook.Provider; the generic
// handler (handlers/webhook) does everything else.
//
// # Verification
//
// Reusely's Authorization header is a keyed SHA-256 of the envelope's
// object_id followed, with no separator, by its timestamp (Unix seconds,
// sent as a string). By default it is the HMAC-SHA256 of that string under
// the webhook secret, in hex (either case); Config.Algorithm selects plain
// SHA-256 of secret ‖ object_id ‖ timestamp instead, and Config.Encoding
// base64 (standard or URL alphabet, padded or not), for an account whose
// signatures turn out that way: the seed's "hash … using SHA-256 and your
// secret key" reads either way. Several secrets may be active at once
// (rotation); each is compared with hmac.Equal. Sign and SignWith make
// signatures, for receiptctl and tests.
//
// The signature does not cover the body. Verify therefore reads object_id
// and timestamp from the body itself (one decode of the top-level object,
// keys matched exactly) and checks the signature of THOSE values, so a body
// verifies only under a signature made for its own pair. Each must be an
// unsigned integer without leading zeros, as a JSON number or a string of
// digits, so that a pair has one spelling. A body that is not a JSON object
// carrying both fields is refused as unauthenticated (401): nothing in it
// can be bound to the signature, so it is not answered 400 like the other
// providers' non-JSON bodies. Verify then requires the timestamp to be
// within Config.Tolerance (default one hour: Reusely retries at +10 and +40
// minutes) of the time received, either way.
//
// The key id recorded is webhook.KeyID of the secret that matched, the
// scheme SchemeHMACSHA256 or SchemeSHA256.
//
// # What the signature leaves open, and what closes it
//
// Everything in the body but object_id and timestamp is unauthenticated.
// Whoever obtains one Authorization value (the seed itself recommends
// logging every request with its headers) can, until the timestamp leaves
// the tolerance, send any body with the same pair. Two things close that:
//
//   - The claim. Normalize returns the pair as webhook.Normalized.Claim
//     ("{object_id}:{timestamp}"), and the handler, before it decides the
//     fact, appends a signature.claimed.v1 event to
//     claim-{source}.{object_id}:{timestamp} with expected revision "no
//     stream": the first delivery under a pair binds it, durably and in
//     the log itself (so every ingest node on one KurrentDB shares it, and
//     a restart changes nothing), to its offer stream and its body's
//     SHA-256. A later body under the same pair for another box id is
//     refused as unauthenticated (401), one for the same box id as a
//     conflict (409, outcome "conflict"); the same body again goes on to
//     the offer stream, where it is a duplicate (or is recorded, if the
//     first attempt failed after its claim). Nothing is appended for a
//     refused body. data.box_id is not signed and the seed names the
//     envelope's object "event", so object_id reads as the id of the
//     event, not of the offer: the claim is what ties a pair to one box.
//   - The fact's slot key is "signed:{object_id}:{timestamp}" with the
//     aggregate.Reject policy, and its dedupe key that slot and the body's
//     SHA-256: within the offer stream, a different body under the same
//     pair is aggregate.ErrConflict (409) as well. For offers recorded
//     before claims existed (no claim stream for their pair) this is the
//     only check, and a body for another box id within the tolerance of
//     such a pair would still be recorded once: an upgrade leaves that
//     window open for one tolerance.
//
// The first body recorded for a pair wins. If a forged body reaches
// receiptd before Reusely's own delivery, the genuine one is refused (409,
// or 401 if the forgery named another box id), and so are Reusely's retries
// of it: the conflict and bad_signature counters and their log lines are
// the signal to look at. A verified delivery that cannot be normalized is
// quarantined without a claim; if a later version re-processes it, the
// claim is checked then, and a refused one stays quarantined.
//
// Each Reusely delivery costs one more durable append (the claim) and a
// retry one failed append and a one-event read: Reusely's volume makes
// that irrelevant.
//
// Keep Tolerance as short as Reusely's retries allow, and keep the
// Authorization header out of access logs.
//
// If object_id turned out to be the offer's id rather than the event's,
// the claim would always name one box per pair, and two different events
// of one offer signed in the same second would share a pair: the second
// would be refused with 409 until Reusely retried it under a new timestamp.
//
// The two values are concatenated with no separator, but the split is
// unambiguous: the timestamp must be within the tolerance of now, so it has
// exactly ten digits (until 2286), and moving a digit across the boundary
// moves it decades away. Plain SHA-256 of secret ‖ message is open to
// length extension in general; here an extended message would have to pass
// as the digits of object_id and timestamp, which SHA-256's padding bytes
// cannot.
//
// # Normalization
//
//	offer.created          offer-{source}.{data.box_id}  entity.event_recorded.v1  EntityEventRecorded  slot "signed:{object_id}:{timestamp}"  Reject
//	offer.status.updated   offer-{source}.{data.box_id}  entity.event_recorded.v1  EntityEventRecorded  slot "signed:{object_id}:{timestamp}"  Reject
//
// The EntityEventRecorded has Kind "offer", EntityID data.box_id, EventType
// the type as sent, Status data.status as sent (statuses are customisable
// per account) with StatusAt the envelope's timestamp, OccurredAt the same
// timestamp, Amount data.payout_amount as an exact decimal ("960.00"),
// Currency data.payout_currency_symbol as sent ("$": Reusely sends no
// currency code, and a symbol is not guessed into one), and as Attributes
// object_id and, where sent as a non-empty string, a number or a boolean,
// status_id, payout_total (the display string "$960.00"),
// payout_currency_symbol, payout_method, expedited_payout_fee,
// selling_type, buyback_source, offer_created_by, number_of_buyback_items,
// location_id, location_name, courier, tracking_number and created_at.
// Customer name, e-mail, payout details and URLs stay in the raw body,
// which every fact keeps.
//
// # What is required
//
// An event type other than the two above is aggregate.ErrUnknownEvent. No
// type string, no data object, no data.box_id (a string, or a number's
// text, of at most 256 printable bytes), a signed field missing or
// malformed, or a payout_amount that is present but not a decimal, is
// aggregate.ErrUnnormalizable. Both are quarantined by the handler. A body
// that is not JSON never reaches Normalize (Verify refuses it); if it did,
// Normalize would return ErrUnnormalizable and the handler answer 400.
//
// # Caveats
//
// Verify and Normalize each decode the top-level object (and data): about
// twice the decoding cost of a provider that verifies the raw bytes alone.
// Reusely's volume makes that irrelevant; the bytes are never decoded more
// than those two times.
//
// This package imports handlers/webhook (for the Provider types),
// aggregate and the decimal library. It never imports eventstore, and it
// knows nothing of HTTP statuses, stores or metrics: the claim is recorded
// by the handler.
package reusely
