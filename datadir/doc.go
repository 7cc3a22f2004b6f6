// Package datadir opens a receiptd data directory (--data-dir) as its
// config says, and runs the operations on it that `receiptd` does with
// no server holding it.
//
// # Basics
//
// OpenStore opens the log the config chooses (the embedded store's
// events.db, with a memory map large enough never to grow under an
// online backup, or a KurrentDB cluster); OpenKeyring the privacy
// keyring beside it (the key file, or the cluster's key streams).
// OpenOffline opens the log and the read models (views.db) for an audit
// or a rebuild with no server running, and, when a server holds either,
// says to ask that server instead (ErrServerRunning). BackupOffline copies
// a stopped server's log (package backup's file); Snapshotter is what the
// Backup RPC of a running one copies. Restore puts a backup in place
// (backup.Restore) and rebuilds the read models from it; Seal seals a log
// written before privacy was configured in place and rebuilds the read
// models from it; Reforget destroys again the keys the log records as
// destroyed.
//
// # Why a package of its own
//
// These span the log (eventstore/bolt, eventstore/esdb), the read models
// (projections), the keys (privacy), ingest's providers (handlers/webhook,
// which Seal runs every stored delivery through again) and the config:
// privacy cannot import handlers/webhook (which imports privacy), nor
// backup the config. Here each is reachable by a test outside cmd;
// cmd/receiptd keeps the commands' flags and output. It imports no
// aggregate; nothing imports it but cmd/receiptd.
//
// # Caveats
//
// The offline operations apply the memory budget's Go limit and GC target
// to the process they run in (internal/membudget's Plan.Apply), as the
// server does: they are meant to run in a process of their own.
package datadir
