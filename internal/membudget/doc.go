// Package membudget plans how one memory budget (the config's
// memory_budget) is spent: the Go runtime's soft memory limit and GC
// target, and the byte budgets of the caches that take their share of it
// (the webhook decision cache, the read models' record cache, the
// embedded store's tail, the privacy keyring's data keys).
//
// # Basics
//
// New makes a Plan from a Request (the budget, whether the process
// serves or runs an offline command, the cache sizes set explicitly);
// Plan.Apply sets the runtime's limit and GC target from it, unless the
// environment (GOMEMLIMIT, GOGC) already has, and logs the plan. The
// shares and the measurements behind them are in membudget.go.
//
// It knows nothing of the components it sizes: config turns the config
// file into a Request, and cmd/receiptd passes each field of the Plan to
// the option of the package it sizes. It imports only the standard
// library and internal/bytesize.
package membudget
