// Package projections keeps receiptd's read models: it follows the log from a
// checkpoint and applies events to views in a separate bbolt file, writing the
// views and the checkpoint in one transaction, so a crash never applies an
// event twice or skips one. Every read model can be rebuilt from the log.
//
// It imports aggregate and eventstore; never handlers, gen or cmd.
package projections
