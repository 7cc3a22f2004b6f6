// Package projections keeps receiptd's read models: it follows the log from a
// checkpoint and applies events to views in a separate bbolt file, writing the
// views and the checkpoint in one transaction, so a crash never applies an
// event twice or skips one. Every read model can be rebuilt from the log.
//
// # Basics
//
// DB holds the read models and is what handlers/api reads (it implements
// api.Reader); Runner feeds it from an eventstore.Store. The read models:
//
//   - receipts (DB.Receipt, DB.UserReceipts): the aggregate.ReceiptView of
//     every receipt, and each user's receipts newest first;
//   - balances (DB.Balance): per user id namespace (source), the totals of
//     the user's receipts, the points credited to the user outside receipts
//     (aggregate.TypeUserPointsCredited, in its BalanceSource), and the
//     provider's newest balance snapshot; see Balance for how they reconcile;
//   - entities (DB.Entity, DB.Entities): every other thing a provider reports
//     on (aggregate.TypeEntityEventRecorded: offers, accounts, orders,
//     customers, redemptions, users' trigger events) by source, kind and id,
//     with a status chosen by the provider's time, never by arrival order,
//     and a bounded timeline; see Entity;
//   - the ledger (DB.Ledger): every change to a user's derived points
//     (award, corrected award, award moved to another user, credit) with
//     the event behind it and the exact running total;
//   - the pipeline statistics (DB.Stats, DB.StatsTotals): receipts by
//     outcome, failure stage, source and day, points and CO2e, and the
//     time from UPLOADED to terminal (see stats.go for the clock and the
//     histogram behind the percentiles);
//   - the quarantine list and the events that could not be applied.
//
// Every user an event names has a balance view, zeros until something is
// awarded or credited. Names lists the read models by the names rebuilds
// and audits use; schema.go says which buckets each owns.
//
// History reads the events behind a receipt from the log itself.
// Collector (metrics.go) exports the checkpoint, the lag behind the log and
// the pipeline statistics as Prometheus metrics.
//
// # Rebuilds, audits, watches
//
// The read models are a pure function of the log: nothing the applier
// writes depends on the clock, on the batches the log arrived in, or on
// map order, so a rebuild of one log yields the same keys and values byte
// for byte (Dump, Summaries). DB.Rebuild replays the log into a scratch
// file beside the live one while the live one keeps serving, and swaps it
// in (or copies one read model's buckets over) once it has caught up with
// the Runner; the *DB stays the same value, so the API, WaitFor waiters,
// watchers and the Runner carry across. DB.Audit rebuilds into a scratch
// file and compares it key by key with the live read models. Admin wraps
// both for the API, and AuditMetrics (auditmetrics.go) wraps Admin to
// export what the server's last audit found as Prometheus gauges.
// AuditReport.WriteText and RebuildResult.WriteText (report.go) print them
// as `receiptd audit` and `receiptd rebuild` do.
// DB.RebuildIfAhead (resume.go), run before a server serves, rebuilds
// read models whose checkpoint is past the log's head (a log restored
// from a backup). DB.Mark and DB.WaitChange tell a watcher when the view
// it follows may have changed.
//
// # Cost
//
// Records are binary (records.go): a receipt is one record holding its
// aggregate state (its facts without raw bodies, when each stage was first
// received, its first and last positions), from which its view, its
// user's totals contribution and its statistics contribution are derived;
// users, statistics and the ledger are binary too. Records an event
// changes are kept decoded in a cache across batches (bounded by
// WithCacheBytes) and written once per commit; commits are not fsynced
// (see Open for what happens after a crash). A rebuild or an audit replays
// the log in passes sized to the cache (bulk.go), writing each record
// once, in key order, into a scratch file.
//
// Audits, digests (ModelSummary) and Dump see the read models in their
// canonical form (canon.go): the buckets and JSON values of the read
// models before binary records, re-derived with hand-written encoders
// that write encoding/json's bytes, so the digests of a log's read models
// are the same whichever version built them.
//
// # Caveats
//
// The file's layout is versioned (schema.go). Open discards read models of
// another version and the Runner rebuilds them from the start of the log;
// until it has, reads answer as of an earlier position.
//
// The file is locked while open (ErrLocked for another process). A swap
// renames the new file over the old one while both are open, which POSIX
// file systems allow.
//
// It imports aggregate, eventstore, eventcodec and the Prometheus client;
// never handlers, gen or cmd.
package projections
