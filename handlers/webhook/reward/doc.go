// Package reward is the Reward (rewardplugin) webhook provider: it
// authenticates deliveries by a shared token and normalizes Reward's two
// event types into facts for the aggregate. It implements webhook.Provider;
// the generic handler (handlers/webhook) does everything else.
//
// # Verification
//
// Reward documents no signature. A source is configured with one or more
// shared tokens (rotation), which Reward presents either in its URL, POST
// /webhooks/{source}/{token} (webhook.TokenPattern; the usual set-up, since
// Reward's webhook form takes only a URL), or as Authorization: Bearer. An
// optional allow-list restricts the remote address. The check is
// tokenauth.Checker's: constant-time over SHA-256 digests, no token ever in
// an error. Verification.Scheme is "path-token" or "bearer-token", and
// KeyID is webhook.KeyID of the token that matched.
//
// A token does not cover the body, and nothing stops a replay: treat
// Reward's credits as low-trust facts. The dedupe keys below are what keep a
// replayed or re-sent delivery from counting twice.
//
// # Normalization
//
// The envelope is {id, type, time, data}; "type" is the event type.
//
//	type                          stream                        event type                data                 dedupe key
//	trigger_event.created         user-{source}.{data.user.id}  entity.event_recorded.v1  EntityEventRecorded  "envelope:"+id
//	balance.credit_points_issued  user-{source}.{data.user.id}  user.points_credited.v1   PointsCredited       "credit:"+data.transaction.id
//
// trigger_event.created becomes an aggregate.EntityEventRecorded of Kind
// "user" (EntityID and UserID the user id, EventType the type as sent,
// OccurredAt the envelope's time) with the attributes trigger_id
// (data.trigger.id) and value (data.value, the number's text as sent,
// checked to be a decimal). Its dedupe key is "envelope:" and the envelope
// id; a body without an id is keyed "body:" and its SHA-256 instead.
//
// balance.credit_points_issued becomes an aggregate.PointsCredited:
// TransactionID data.transaction.id, Points data.transaction.amount as an
// exact decimal parsed from the JSON number's text (never through float64),
// BalanceSource Config.BalanceSource (the source itself by default),
// OccurredAt the envelope's time. Its dedupe key is "credit:" and the
// transaction id, so the same credit delivered under two envelope ids is a
// duplicate and is counted once. Neither fact has a slot key: Reward
// corrects nothing, and each trigger event or transaction stands alone.
//
// Every fact keeps the raw body, and Normalized.DeliveryID is the envelope
// id (recorded in the metadata).
//
// # What is required
//
// A type other than the two above is aggregate.ErrUnknownEvent. No type, an
// id that is not a string or number of at most 256 printable bytes, no data
// object, no data.user.id, a trigger id or value of the wrong type, and for
// a credit no data.transaction, no transaction id, or an amount that is
// missing, not a decimal or negative, are aggregate.ErrUnnormalizable. The
// handler quarantines both. A body that is not JSON at all fails
// Normalize too; the handler then answers 400. An unparsable time is
// omitted, not an error.
//
// # Caveats
//
// The body is decoded once, into a struct of only the fields above, each
// kept as its raw JSON text, as the sender's JavaScript (JSON.parse) reads
// it (jsonfield.Decoder): keys match exactly ("AMOUNT" is not amount), a
// repeated key takes its last value, a repeated object is its last one,
// whole.
//
// This package imports handlers/webhook, handlers/webhook/tokenauth,
// aggregate and the decimal library. It never imports eventstore, and it
// knows nothing of HTTP statuses, stores or metrics.
package reward
