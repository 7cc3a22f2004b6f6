// Package bolt is receiptd's embedded event store: an eventstore.Store in one
// bbolt (go.etcd.io/bbolt) file, the default when no KurrentDB is configured.
//
// # Basics
//
// Open a file and use the Store through the eventstore.Store interface:
//
//	s, err := bolt.Open(filepath.Join(dataDir, "events.db"), bolt.Options{})
//	...
//	defer s.Close()
//	res, err := s.Append(ctx, stream, eventstore.NoStream, event)
//
// Events are numbered 1, 2, 3… in one global order (Position.Commit ==
// Position.Prepare) and by revision from 0 within their stream. The file
// layout (buckets, keys, record encoding) is in schema.go and record.go.
//
// A stream's events are found through an index of (stream, revision) ->
// position, which is derived from the events: each event record names its
// stream and revision. The index is written lazily (pending.go): the
// entries of recent appends are held in memory, bounded by
// Options.IndexBufferBytes, and each commit writes those of a slice of the
// index's key space, so that an index page is written once for many
// entries instead of once per append (a random page for nearly every
// append, when streams are appended to in no particular order). Open reads
// the events whose entries were still in memory at a crash again.
//
// Appends are group-committed: a single committer goroutine takes every
// Append queued while its previous transaction was committing, applies them
// in order in one bbolt write transaction (each checked against its expected
// revision, seeing the appends before it), commits with one fsync, and
// answers each caller. There is no timer: the next transaction starts as soon
// as the previous one is durable, so a lone writer pays one fsync and many
// concurrent writers share one. (BenchmarkAppend compares it with one
// transaction per Append and with bbolt's DB.Batch.)
//
// Append returns only once its events are fsynced. When the commit fails
// (fsync error, disk full, Options.MaxSize reached) every Append of that
// transaction fails with an error matching eventstore.ErrUnavailable; when
// its expected revision does not hold, only that Append fails, with
// eventstore.ErrWrongRevision.
//
// Subscribe catches up with short read transactions and then waits for the
// committer's notification; handlers never run inside a transaction. Once
// caught up, it takes new events from a tail of the latest commits the
// committer keeps in memory (Options.TailBytes) instead of reading the
// file; a subscriber that falls behind the tail reads the file, and never
// holds the committer back.
//
// # Memory
//
// bbolt reads the file through a memory map, and every page read through
// it stays in the process's resident memory (RSS) until the kernel needs it
// back. So that RSS does not grow with the log: scans (ReadAll, a
// subscriber's catch-up) read ahead with MADV_WILLNEED and drop the pages
// they went through with MADV_DONTNEED once their batch is copied out; live
// subscribers read the in-memory tail; and every Options.TrimInterval the
// whole map is dropped (MADV_DONTNEED), so the resident part of the file is
// what was touched since (index and branch pages fault back in from the
// page cache when next used). The map is read-only and shared, so dropping
// a page loses nothing; the advice is given inside a read transaction, so
// the map cannot move meanwhile (see advise.go).
//
// # Caveats
//
// The file is locked by the process that opened it: one Store per file
// (Open of a file another Store holds fails with ErrLocked; CheckNotLocked
// tells whether any bbolt file is held without opening a Store, as a
// restore does before it replaces a data directory's files).
//
// An Append whose commit failed with ErrUnavailable may still be in the file
// (bbolt can have written its meta page when the last fsync fails), like an
// Append abandoned through its context: re-read the stream before retrying.
//
// Events are never deleted; the file only grows. Every event is a separate
// bbolt value, and one of a few KiB takes a page of its own. Records of
// version 1 (written before events had a Body) are read as they are, never
// rewritten; new records are version 2. Likewise a file created in an
// earlier schema (1: stream names in every index key; 2: stream ids, the
// index written with every commit) keeps its layout; a new file is created
// in schema 3 (see schema.go).
//
// Open after a crash reads the events appended since the index's last
// complete sweep, up to about two sweeps of IndexBufferBytes' worth of
// entries (with the default, on the bench's deliveries, about 40,000
// events read in 0.07 s with the file in the page cache and 0.28 s
// without; BenchmarkOpenAfterCrash). Close writes every entry, so a clean
// Open reads none.
//
// bbolt disables readahead on its memory map (MADV_RANDOM); a scan asks for
// it itself (see Memory), so a cold ReadAll from Start reads ahead. Random
// reads (ReadStream) do not.
//
// This package imports only eventstore, aggregate and bbolt (and the
// standard library); it never imports projections or handlers.
package bolt
