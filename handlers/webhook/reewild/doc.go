// Package reewild is the Reewild (PlanetPoints) receipt-webhook provider: it
// verifies X-Reewild-Signature on the raw body and normalizes Reewild's eight
// event types into facts for the aggregate. It implements webhook.Provider;
// the generic handler (handlers/webhook) does everything else.
//
// # Verification
//
// X-Reewild-Signature is the HMAC-SHA256 of the raw body under the webhook
// secret. The seed does not state the encoding: lower- or upper-case hex is
// the default, standard and URL-safe base64 (padded or not) are accepted, and
// so is a "sha256=" prefix. Several secrets may be active at once (rotation);
// each is compared with hmac.Equal. The scheme has no timestamp or nonce: a
// captured delivery replays forever, and the aggregate's dedupe is what keeps
// it from counting twice. The key id recorded is webhook.KeyID of the secret
// that matched. Sign makes a signature, for receiptctl and tests.
//
// # Normalization
//
// The event type is data's sibling "eventType"; the underscore spellings of
// the seed's prose are aliases (receipt_uploaded, receipt_completed for
// rewards.awarded, and the underscore form of every type).
//
//	user.enrolled        user-{source}.{data.userID}       user.enrolled.v1           UserEnrolled   slot "enrolled"
//	receipt.uploaded     receipt-{source}.{data.receiptID} receipt.stage_recorded.v1  UPLOADED       slot "stage:UPLOADED"
//	receipt.extracted    …                                 …                          EXTRACTED
//	receipt.enriched     …                                 …                          ENRICHED
//	receipt.validated    …                                 …                          VALIDATED
//	receipt.scored       …                                 …                          SCORED
//	rewards.awarded      receipt-{source}.{data.transaction.externalTransactionID}    AWARDED
//	receipt.failed       receipt-{source}.{data.receiptID}                            FAILED
//
// The dedupe key is the canonical (dotted) event type, the entity id and the
// body's SHA-256, joined by ':'; every fact uses the Correct conflict policy,
// so the same stage with another body is recorded as a correction.
//
// A StageRecorded takes the user from data.userID, data.profileID
// (receipt.uploaded) or data.user.id (rewards.awarded); the merchant from
// data.merchantName, data.brand, data.businessName or data.transaction.brand;
// the currency from data.currency; the amount from data.amount
// (receipt.uploaded), data.subTotal or data.transaction.totalAmount. Its
// OccurredAt is the stage's own time where the payload has one: uploadedAt
// for receipt.uploaded (UserEnrolled.EnrolledAt is createdAt). The
// transaction timestamps of the other stages (transactionDate,
// transactionTimeStamp) are when the purchase happened, not when the stage
// did, so they are left in the raw body. rewards.awarded adds the Award
// (transaction.transactionID, totalPoints, totalBonusPoints,
// totalHealthPoints, totalCO2e, totalGreenProducts, and the user's
// availablePoints, lifetimePoints and numOfTransactions as the snapshot);
// receipt.failed adds the Failure (failureStage, failureStageName,
// errorMessage, as sent). Every fact keeps the raw body.
//
// # What is required
//
// An unknown event type is aggregate.ErrUnknownEvent. No eventType, no data
// object, no entity id (receiptID, externalTransactionID, userID; a string,
// or a number's text, of at most 256 printable bytes), a rewards.awarded
// without data.transaction or totalPoints, or a number that is present but
// not a decimal, is aggregate.ErrUnnormalizable. Both are quarantined by the
// handler. A body that is not JSON at all is ErrUnnormalizable too; the
// handler, finding it invalid, answers 400 instead. Numbers are parsed from their JSON text into decimal.Decimal,
// never through float64 (a JSON string holding a JSON number is accepted).
// Descriptive fields of an unexpected type, and timestamps that are missing
// or unparsable, are omitted instead. Timestamps are RFC 3339
// ("2025-11-07T19:12:34.567Z", "2025-10-08T00:00:00+00:00") or a zoneless
// local time with up to nine fraction digits ("2025-11-21T15:00:45.1070976"),
// read as UTC.
//
// # Caveats
//
// The body is decoded once, into a struct of only the fields above, each
// kept as its raw JSON text; items and everything else are checked and
// skipped. It is read as the sender's JavaScript (JSON.parse) reads it
// (jsonfield.Decoder): keys match exactly, so "TOTALPOINTS" is not
// totalPoints and "EVENTTYPE" is not eventType (encoding/json's struct
// decoding matched both, and stored 888 points for
// "totalPoints":5,"TOTALPOINTS":888); a repeated key takes its last value;
// a repeated object is its last one, whole.
//
// This package imports handlers/webhook (for the Provider types),
// aggregate and the decimal library. It never imports eventstore, and it
// knows nothing of HTTP statuses, stores or metrics.
package reewild
