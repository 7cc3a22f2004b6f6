// Package backup is receiptd's backup file and its restore: a fixed
// header (the head position, the data's length, when it was taken, a
// SHA-256 of header and data) followed by the embedded store's file
// (events.db) byte for byte.
//
// # Basics
//
// Create writes a backup file beside its target and renames it into place
// once whole and synced; Offline fills one from the events.db of a stopped
// server (bolt.OpenSnapshot), Receive from a running server's Backup RPC
// (handlers/api's BackupService streams header, data and trailer).
// ReadHeader reads and checks a file's header. Restore checks a backup
// file (header, length, checksum, bbolt's consistency check, head) before
// it writes anything, refuses a data directory a running server holds
// (bolt.CheckNotLocked), removes the read models of the log it replaces
// and puts the log in place; the caller rebuilds the read models from it.
// Package datadir calls these with the data directory the config names
// (datadir.BackupOffline, datadir.Restore, which then rebuilds the read
// models); `receiptd backup` and `receiptd restore` (cmd/receiptd) are
// the flags and the output around them.
//
// # Why a package of its own, at the top level
//
// The format and the restore procedure span three layers: the embedded
// store's file (eventstore/bolt), the read models a restore must remove
// (projections), and the client side of the API's Backup stream (gen,
// handlers/api). Under eventstore/bolt it would make the store's subtree
// import the read models and the API; in cmd/receiptd no test outside a
// process could reach it. Here it imports all three and none imports it
// but datadir and cmd/receiptd.
//
// # Caveats
//
// The embedded store only: a KurrentDB log is backed up and restored with
// the cluster's own tools. A backup holds the log, not the read models, so
// a restore is as slow as a rebuild of them.
package backup
