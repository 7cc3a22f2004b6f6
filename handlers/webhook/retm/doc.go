// Package retm is the RETM (restaurant point of sale) webhook provider: it
// authenticates deliveries by a shared token, optionally bound to a
// merchant, and normalizes RETM's invoice, customer, loyalty and error
// webhooks into facts for the aggregate, answering the synchronous loyalty
// questions. It implements webhook.Provider; the generic handler
// (handlers/webhook) does everything else.
//
// # Verification
//
// RETM signs nothing: the receiver issues a token at install, and RETM sends
// it as Authorization: Bearer. The path token of POST
// /webhooks/{source}/{token} (webhook.TokenPattern) is accepted too. Several
// tokens may be active (rotation, or one per merchant), and an optional
// allow-list restricts the remote address. The check is tokenauth.Checker's:
// constant-time over SHA-256 digests, no token ever in an error.
// Verification.Scheme is "bearer-token" or "path-token", and KeyID is
// webhook.KeyID of the token that matched.
//
// A token may be bound to a merchant (Token.Merchant). The body's business
// reference — "business_refrence" (RETM's spelling) or "business_reference"
// (the Promotional Coupon page's) — must then name that merchant wherever
// the body has one; a mismatch is unauthenticated (401, nothing stored). A
// body with no business reference (the error webhook has none) is attributed
// to the token's merchant.
//
// # Normalization
//
// RETM's invoice and customer webhooks name their type in "event"; its
// loyalty and error webhooks carry no type and are recognized by their
// shape, and receiptd names them (EventRedeemReward, EventCheckReward,
// EventError). Every fact is an aggregate.EntityEventRecorded
// (entity.event_recorded.v1) with the raw body:
//
//	webhook (how recognized)                      stream                              Kind/Status                                  dedupe key; slot
//	event order.created                           order-{source}.{invoice_id}         order, invoice status name                   order.created:{id}:{sha}; "order.created"
//	event order.refunded                          order-{source}.{invoice_id}         order, invoice status name                   order.refunded:{id}:{sha}; none
//	event order.* (other; payload unpublished)    order-{source}.{invoice_id}         order, no status                             {event}:{id}:{sha}; none
//	event customer.created|updated|deleted        customer-{source}.{customer.id}     customer, created|updated|deleted            {event}:{id}:{sha}; "customer.created"/"customer.deleted"/none
//	Redeem Reward (reward_code + branch_id/date)  redemption-{source}.{reward_code}   redemption, redeemed                         redeem:{code}:{sha}; "redeemed"
//	Check Reward / Promotional Coupon             question-{source}.{body sha256}     question, rejected (+ Reply 400)             question:{sha}; none
//	  (reward_code alone)
//	error webhook (endpoint)                      notice-{source}.{sha256(endpoint)}  notice, no status                            notice:{sha}; none
//
// {sha} is the body's SHA-256: RETM sends no event id, so an exact
// re-delivery is recognized by its body. Every fact uses the Correct
// conflict policy: a second order.created, customer.created or
// customer.deleted of one entity, or a second redemption of one reward code,
// with another body is recorded as a correction (an anomaly). Refunds may be
// partial and several, and updates many, so those stand alone.
//
// Invoices: Status is the name of RETM's status code (1 Closed, 2 Pending,
// 3 Active, 4 Refunded, 5 Void; another code is kept as sent, and so is a
// status sent as a name), with the code in the attribute status_code.
// Amount is total_price, parsed exactly from its text ("75.000"; a JSON
// number is accepted too), with Config.Currency, since RETM names none;
// subtotal_price and tax are attributes (checked decimals, as sent).
// OccurredAt and StatusAt are the event's timestamp, or for order.created
// the invoice's created_at when there is no timestamp. Other attributes:
// reference, event_type, order_reference (or RETM's order_refrence), sale_id,
// branch_id, device_id, created_at as sent.
//
// Customers: Status is the event's verb, StatusAt the timestamp; the
// attributes are reference, name, name_localized, phone and email. Redeem
// Reward: Status "redeemed", StatusAt the timestamp (or the date); the
// attributes are branch_id and date. Error webhook: the attributes are
// endpoint, code and message; the stream is named by the endpoint's hash
// so that every failure of one endpoint lands on one stream.
//
// Every fact's attribute business_reference is the body's business
// reference, or the token's merchant.
//
// # Questions
//
// Check Reward and Promotional Coupon are one synchronous question (the POS
// waits for a discount or a refusal), and receiptd has no reward decision to
// give. The question is recorded on its own stream and, once the append is
// durable (or found to be a duplicate), answered through Normalized.Reply
// with the refusal RETM documents, status 400:
//
//	{"data":[],"message":"This reward code cannot be accepted: no reward decision is configured for this integration.","errors":["no reward decision configured"]}
//
// The fact records the answer (attributes answer_status "400" and answer).
//
// # Timestamps
//
// RETM sends zoneless local times ("2025-12-17 19:26:35", and the customer
// hook's "2025-12-17T19:20:04"), read in Config.Location (UTC unless set);
// RFC 3339 times are taken with their zone, and a date alone is midnight.
// "0001-01-01T00:00:00" (.NET's DateTime.MinValue, the customer hook's
// placeholder) means not set. A missing or unparsable time is omitted.
//
// # What is required
//
// An "event" other than the invoice, customer and order.* ones, and a body
// with no "event" that has neither reward_code nor endpoint, are
// aggregate.ErrUnknownEvent (menu webhooks among them: their payloads are
// unpublished and receiptd has no menu category yet). An "event" that is not
// a string; an invoice or order.* event without invoice_id; a customer event
// without a customer object or customer.id; a Redeem Reward without a
// reward_code id; an error webhook whose endpoint is not a non-empty string;
// and a total_price, subtotal_price or tax that is present but not a
// decimal are aggregate.ErrUnnormalizable. Ids are strings or numbers of at
// most 256 printable bytes. The handler quarantines both kinds of failure.
// A body that is not JSON at all fails Normalize too; the handler then
// answers 400. Descriptive fields of an unexpected type are omitted.
//
// # Caveats
//
// The body (and a customer object) is read as the sender's JavaScript
// (JSON.parse) reads it (jsonfield.Decoder), in Normalize and in the
// merchant check alike: keys match exactly ("TOTAL_PRICE" is not
// total_price, "BUSINESS_REFRENCE" is not business_refrence), a repeated
// key takes its last value.
//
// A token does not cover the body, and nothing stops a replay within one
// merchant's token: the body-hash dedupe keys are what keep a replay from
// counting twice. Two genuinely separate error webhooks with the same body
// are one notice: the payload has no time to tell them apart.
//
// The body is decoded once for the merchant check (two fields) and once for
// normalization, into a struct of only the fields above, each kept as its
// raw JSON text.
//
// This package imports handlers/webhook, handlers/webhook/tokenauth,
// aggregate and the decimal library. It never imports eventstore, and it
// knows nothing of HTTP statuses, stores or metrics beyond the Reply's.
package retm
