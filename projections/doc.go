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
//   - the quarantine list and the events that could not be applied.
//
// Every user an event names has a balance view, zeros until something is
// awarded or credited.
//
// # Caveats
//
// The file's layout is versioned (schema.go). Open discards read models of
// another version and the Runner rebuilds them from the start of the log;
// until it has, reads answer as of an earlier position.
//
// It imports aggregate and eventstore; never handlers, gen or cmd.
package projections
