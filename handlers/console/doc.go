// Package console is receiptd's operator console: server-rendered pages
// at /ui/ (html/template, one small hand-written script, a stylesheet, all
// embedded) for the people who run receiptd.
//
// # Pages
//
//   - Live: receipts as they move through the pipeline, pushed to the page
//     with server-sent events, each with its stages, status and anomalies.
//   - Receipt: the timeline of a receipt's events, with the raw body of each.
//   - User: reported vs derived balance, reconciliation, the ledger with its
//     running exact total, receipts by status.
//   - Deliveries: webhook outcomes per source over time (sampled from the
//     ingest counters into a bounded in-memory ring: the log does not hold
//     refused deliveries), and the quarantine list with a re-process action.
//   - Overdue: a source's receipts in progress past its retry window
//     (ListReceipts, status "overdue"), the longest waiting first.
//   - Health: store, read model checkpoint and lag, version.
//   - Send test event: sign an example payload with a source's scheme and
//     deliver it to this server over loopback HTTP (see Signing).
//
// # Raw bodies
//
// A raw body is whatever a provider sent (anyone holding a Reward or RETM
// token can send one), so what a page shows of it is bounded: at most
// 16 KiB of text per body, indented if it nests at most 16 deep and shown
// as sent (cut) otherwise; at most 1 MiB of body text per page, as HTML,
// past which a body is a link only; and a rendered page past 8 MiB is an
// error, not a larger page. Every body downloads whole, byte for byte
// (GET /ui/receipts/{source}/{id}/events/{revision}/raw and
// /ui/deliveries/{source}/{position}/raw), as an application/octet-stream
// attachment with nosniff and a sandbox CSP, to a signed-in operator whose
// key the query API still accepts for the page it comes from.
//
// # Access
//
// The console is an admin surface. An operator signs in with an API key
// holding the admin scope (checked by the same Authenticator as the query
// API); the server keeps the session (the key, a CSRF token, an expiry) in
// memory and gives the browser an HttpOnly, SameSite=Strict cookie holding
// a random session id and an HMAC over it and its expiry. Page requests
// without a session are redirected to the login page; the event stream and
// actions answer 401. Every POST also carries the session's CSRF token.
//
// The console reads receipts, balances, ledgers, events and the quarantine,
// and re-processes quarantined deliveries, through the query API
// (receiptd.v1 over gRPC, on the in-process connection the REST gateway
// uses, so the access interceptors judge every call), authenticated with the
// operator's own key: the key also needs read:all for the receipt and user
// pages. Three things come from the log directly, read-only: the raw bodies
// of a receipt's events, the raw body of a quarantined delivery when it is
// downloaded (after the query API has judged the key), and the Live feed
// (which receipt streams got events since the server started; the rows
// themselves are read through the API).
// The Deliveries chart samples the ingest counters of this process.
//
// # Signing
//
// "Send test event" stays in the console, and signs through
// handlers/webhook/signer: the package receiptctl send signs with, which
// imports the standard library only. The console imports no provider
// package (a test holds it to that); it is a client of the webhook route
// like any sender, and a test delivery is verified, decided and recorded
// by the same code as a provider's.
//
// Why it may sign at all: every scheme it signs for is symmetric. The
// HMAC secrets (Reewild, Reusely, Standard Webhooks) and the shared
// tokens (Reward, RETM) are what the server verifies with, so it holds
// them whether the console signs or not; moving the button to receiptctl
// would take no secret out of the server, only the convenience out of
// the page. Reap's scheme is asymmetric: the server holds Reap's public
// keys only, the console cannot sign for it, and says so (receiptctl send
// signs with the private key the operator holds). What the console adds
// is the use of a secret, so that use is narrow: an admin session with
// its CSRF token, the embedded example payloads only (no body of the
// operator's choosing), over loopback, a log line naming the principal,
// and a Standard Webhooks message id that starts "msg_console_". A test
// event lands in the source's log like any delivery: on a production
// source, an example award credits the example user, so send test events
// to a test source.
//
// # Imports
//
// It imports gen, handlers/api (the Authenticator, limits),
// handlers/webhook/signer, aggregate (stream ids), eventstore (types of
// the log) and eventcodec (a raw body as the log keeps it); nothing
// imports it but cmd/receiptd and config (the sources' signing keys,
// ConsoleSources).
package console
