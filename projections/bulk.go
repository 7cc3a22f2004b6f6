package projections

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// A rebuild's bulk replay. Replaying the whole log into a scratch file
// through Apply keeps every record the log touches in the cache or, past
// its budget, writes records out and reads them back as the log returns
// to them: with a receipt's events spread across the log, that is a
// random read and write per event. bulkReplay first replays the log in
// one pass, holding every record in the cache and writing each once, in
// key order, at the end. If the records outgrow the budget, it starts
// again over a cleared file: it reads the log once more, writing each
// event (without its raw body) to one of several spill files by its
// stream — a receipt's or an entity's events are all in its stream — as
// many as the share of the log the first pass held says the records
// need, and then applies the spill files one after another, each one's
// records written once at its end.
//
// Partitions are exact because everything a record holds either belongs
// to one receipt or one entity (whose events are all in one partition, in
// log order), or is a sum over them (balances, credits, statistics: the
// order of the partitions does not change a sum or a maximum). The one
// exception is a ledger entry's running Total, which depends on the other
// receipts of the user before it in the log: fixLedger recomputes every
// Total in log order once the partitions are done. An event outside its
// receipt's or entity's stream makes the bulk replay give way to a replay
// in log order. TestDigestsOfAnOlderVersionsLog and
// TestReplaySpilledMatchesOlderDigests check the result against digests
// of an older version's rebuild.

// errOverBudget: a pass's records outgrew the cache's budget.
var errOverBudget = errors.New("projections: a pass outgrew the record cache's budget")

// maxPasses bounds the passes of a bulk replay; with that many, a pass
// that outgrows the budget writes records out instead.
const maxPasses = 256

// bulkReplay builds s, a scratch file at the start of the log, up to and
// including target, and returns the number of events it applied.
func bulkReplay(ctx context.Context, store eventstore.Store, s *DB, target eventstore.Position) (int, error) {
	if !s.deferWrites || s.Checkpoint() != eventstore.Start {
		return 0, nil
	}
	n, at, err := s.replayPasses(ctx, store, target, 1)
	if errors.Is(err, errOverBudget) {
		if err := s.clear(); err != nil {
			return 0, err
		}
		// The one pass held the state of the log up to at: the whole log
		// needs about target/at times the budget (positions grow with the
		// log on every store), with a margin for uneven shares.
		passes := 2
		if at.Commit > 0 && target.Commit > at.Commit {
			need := float64(target.Commit) / float64(at.Commit) * 1.3
			for float64(passes) < need && passes < maxPasses {
				passes *= 2
			}
		}
		n, err = s.replaySpilled(ctx, store, target, passes)
	}
	if errors.Is(err, errForeignStream) {
		// Replay in log order instead (converge, from the start).
		return 0, s.clear()
	}
	return n, err
}

// partition returns the pass an event belongs to: by its stream, which
// is its receipt's or its entity's (checked by inOwnStream), so that a
// pass selects its events before decoding them.
func partition(stream string, passes int) int {
	if passes == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(stream))
	return int(h.Sum32() % uint32(passes))
}

// errForeignStream: an event of a receipt or an entity in another
// stream than the receipt's or entity's own; passes by stream would split
// its events, so the bulk replay gives way to a replay in log order.
var errForeignStream = errors.New("projections: an event outside its receipt's or entity's stream")

// inOwnStream reports whether a decoded receipt or entity event is in
// its receipt's or entity's stream (other events may be in any).
func inOwnStream(e eventstore.RecordedEvent, d *decodedEvent) bool {
	switch {
	case d.stage != nil:
		return e.Stream == aggregate.StreamID(aggregate.CategoryReceipt, d.stage.Source, d.stage.ReceiptID)
	case d.entity != nil:
		return e.Stream == aggregate.StreamID(d.entity.Kind, d.entity.Source, d.entity.EntityID)
	}
	return true
}

// replayPasses applies the log up to target in that many passes. When a
// pass outgrows the budget (errOverBudget), it returns the position of
// the log it had reached.
func (s *DB) replayPasses(ctx context.Context, store eventstore.Store, target eventstore.Position, passes int) (int, eventstore.Position, error) {
	applied, last := 0, eventstore.Start
	for p := range passes {
		after := eventstore.Start
		for after.Less(target) {
			if err := ctx.Err(); err != nil {
				return 0, after, err
			}
			batch, err := store.ReadAll(ctx, after, replayBatch)
			if err != nil {
				return 0, after, fmt.Errorf("read the log after %s: %w", after, err)
			}
			cut := len(batch)
			for i, e := range batch {
				if target.Less(e.Position) {
					cut = i
					break
				}
			}
			if cut == 0 {
				break
			}
			n, err := s.applyPass(batch[:cut], p, passes, passes < maxPasses)
			if err != nil {
				return 0, after, err
			}
			applied += n
			after = batch[cut-1].Position
			if cut < len(batch) {
				break
			}
		}
		last = after
		if err := s.flushAll(); err != nil {
			return 0, after, err
		}
		s.applyMu.Lock()
		s.cache.reset()
		s.applyMu.Unlock()
	}
	if passes > 1 {
		if err := s.fixLedger(); err != nil {
			return 0, last, err
		}
	}
	err := s.bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCheckpoint, encodePosition(last))
	})
	if err != nil {
		return 0, last, err
	}
	s.advance(eventstore.Start, last, nil)
	return applied, last, nil
}

// applyPass applies the events of a batch that belong to pass p, without
// the checkpoint (the passes read the log again from its start). It
// returns how many it applied, or errOverBudget when the cache outgrew
// its budget and there may be more passes.
func (s *DB) applyPass(events []eventstore.RecordedEvent, p, passes int, abortOverBudget bool) (int, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if passes > 1 {
		mine := make([]eventstore.RecordedEvent, 0, len(events)/passes+16)
		for _, e := range events {
			if partition(e.Stream, passes) == p {
				mine = append(mine, e)
			}
		}
		events = mine
	}
	if cap(s.decoded) < len(events) {
		s.decoded = make([]decodedEvent, len(events))
	}
	dec := s.decoded[:len(events)]
	clear(dec)
	defer clear(dec)
	decodeEvents(events, dec)
	err := s.bdb.Update(func(tx *bolt.Tx) error {
		a := applier{tx: tx, c: s.cache}
		for i, e := range events {
			if !inOwnStream(e, &dec[i]) {
				return fmt.Errorf("%s event %s at %s in stream %s: %w", e.Type, e.ID, e.Position, e.Stream, errForeignStream)
			}
			if err := a.apply(e, &dec[i]); err != nil {
				if !errors.Is(err, aggregate.ErrBadEvent) {
					return err
				}
				if err := a.skip(e, err); err != nil {
					return err
				}
			}
		}
		if s.cache.size > s.cache.budget && abortOverBudget {
			return errOverBudget
		}
		return s.cache.shrink(tx)
	})
	if err != nil {
		s.cache.reset()
		return 0, err
	}
	return len(events), nil
}

// clear empties a scratch file and its cache.
func (s *DB) clear() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.cache.reset()
	return s.bdb.Update(func(tx *bolt.Tx) error {
		if err := dropAll(tx); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(schemaVersion))
	})
}

// fixLedger recomputes every ledger entry's running Total in log order:
// the sum of the user's changes up to it.
func (s *DB) fixLedger() error {
	var from []byte
	for {
		next, err := s.fixLedgerChunk(from, 8192)
		if err != nil {
			return fmt.Errorf("recompute the ledger's totals: %w", err)
		}
		if next == nil {
			return nil
		}
		from = next
	}
}

// fixLedgerChunk fixes up to n entries from key from (nil: the first),
// continuing the running total of from's user from the entry before it,
// and returns the key to continue at (nil when done).
func (s *DB) fixLedgerChunk(from []byte, n int) ([]byte, error) {
	var next []byte
	err := s.bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLedger)
		c := b.Cursor()
		var prefix []byte
		total := decimal.Zero
		k, v := c.First()
		if from != nil {
			// Resume: the user's total so far is the Total of the entry
			// before from, already fixed, if it is the same user's.
			k, v = c.Seek(from)
			if pk, pv := c.Prev(); pk != nil && len(pk) > positionLen && bytes.Equal(pk[:len(pk)-positionLen], from[:len(from)-positionLen]) {
				prev, err := decodeLedgerEntry(pv, ledgerKeyCommit(pk))
				if err != nil {
					return fmt.Errorf("entry %x: %w", pk, err)
				}
				prefix, total = pk[:len(pk)-positionLen], prev.Total
			}
			k, v = c.Seek(from)
		}
		type update struct{ k, v []byte }
		var updates []update
		for i := 0; k != nil; k, v = c.Next() {
			if i == n {
				next = bytes.Clone(k)
				break
			}
			i++
			if len(k) <= positionLen {
				return fmt.Errorf("entry %x: short key", k)
			}
			if p := k[:len(k)-positionLen]; !bytes.Equal(p, prefix) {
				prefix, total = bytes.Clone(p), decimal.Zero
			}
			e, err := decodeLedgerEntry(v, ledgerKeyCommit(k))
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			total = total.Add(e.Points)
			if e.Total.Equal(total) {
				continue
			}
			e.Total = total
			updates = append(updates, update{bytes.Clone(k), appendLedgerEntry(nil, &e)})
		}
		for _, u := range updates {
			if err := b.Put(u.k, u.v); err != nil {
				return err
			}
		}
		return nil
	})
	return next, err
}

// replaySpilled reads the log up to target once, writing each event
// (without its raw body, which applying never reads) to the spill file of
// its partition beside the scratch file, then applies the partitions one
// after another: each event is read from the log once, and each
// partition's records are written once, in key order, at its end. A
// partition that still outgrows the budget writes records out as it goes.
func (s *DB) replaySpilled(ctx context.Context, store eventstore.Store, target eventstore.Position, passes int) (int, error) {
	files := make([]*spillFile, passes)
	defer func() {
		for _, f := range files {
			if f != nil {
				f.remove()
			}
		}
	}()
	for i := range files {
		f, err := newSpillFile(s.path)
		if err != nil {
			return 0, err
		}
		files[i] = f
	}
	last := eventstore.Start
	for last.Less(target) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		batch, err := store.ReadAll(ctx, last, replayBatch)
		if err != nil {
			return 0, fmt.Errorf("read the log after %s: %w", last, err)
		}
		cut := len(batch)
		for i, e := range batch {
			if target.Less(e.Position) {
				cut = i
				break
			}
		}
		if cut == 0 {
			break
		}
		for _, e := range batch[:cut] {
			if err := files[partition(e.Stream, passes)].write(e); err != nil {
				return 0, err
			}
		}
		last = batch[cut-1].Position
		if cut < len(batch) {
			break
		}
	}
	applied := 0
	for i, f := range files {
		if err := f.rewind(); err != nil {
			return 0, err
		}
		for {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			batch, err := f.read(replayBatch)
			if err != nil {
				return 0, err
			}
			if len(batch) == 0 {
				break
			}
			n, err := s.applyPass(batch, 0, 1, false)
			if err != nil {
				return 0, err
			}
			applied += n
		}
		f.remove()
		files[i] = nil
		if err := s.flushAll(); err != nil {
			return 0, err
		}
		s.applyMu.Lock()
		s.cache.reset()
		s.applyMu.Unlock()
	}
	if err := s.fixLedger(); err != nil {
		return 0, err
	}
	if err := s.bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCheckpoint, encodePosition(last))
	}); err != nil {
		return 0, err
	}
	s.advance(eventstore.Start, last, nil)
	return applied, nil
}

// spillFile holds one partition's events for a bulk replay, in log
// order: per event, its fields length-prefixed (uvarint).
type spillFile struct {
	f *os.File
	w *bufio.Writer
	r *bufio.Reader
}

func newSpillFile(path string) (*spillFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+scratchSuffix+"spill-*")
	if err != nil {
		return nil, fmt.Errorf("create a spill file: %w", err)
	}
	return &spillFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (f *spillFile) remove() {
	f.f.Close()
	os.Remove(f.f.Name())
}

func (f *spillFile) write(e eventstore.RecordedEvent) error {
	at, err := e.RecordedAt.MarshalBinary()
	if err != nil {
		return fmt.Errorf("spill event %s: %w", e.ID, err)
	}
	var buf [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		f.w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(b)))])
		f.w.Write(b)
	}
	num := func(n uint64) { f.w.Write(buf[:binary.PutUvarint(buf[:], n)]) }
	field([]byte(e.ID))
	field([]byte(e.Type))
	field(e.Data)
	field(e.Metadata)
	field([]byte(e.Stream))
	num(e.Revision)
	num(e.Position.Commit)
	num(e.Position.Prepare)
	field(at)
	return nil
}

func (f *spillFile) rewind() error {
	if err := f.w.Flush(); err != nil {
		return fmt.Errorf("write a spill file: %w", err)
	}
	if _, err := f.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	f.r = bufio.NewReaderSize(f.f, 256<<10)
	return nil
}

// read returns up to n events, none at the end.
func (f *spillFile) read(n int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for len(out) < n {
		var e eventstore.RecordedEvent
		id, err := f.field()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		e.ID = string(id)
		fields := [][]byte{nil, nil, nil, nil}
		for i := range fields {
			if fields[i], err = f.field(); err != nil {
				return nil, err
			}
		}
		e.Type, e.Data, e.Metadata, e.Stream = string(fields[0]), fields[1], fields[2], string(fields[3])
		for _, p := range []*uint64{&e.Revision, &e.Position.Commit, &e.Position.Prepare} {
			if *p, err = binary.ReadUvarint(f.r); err != nil {
				return nil, fmt.Errorf("read a spill file: %w", err)
			}
		}
		at, err := f.field()
		if err != nil {
			return nil, err
		}
		if err := e.RecordedAt.UnmarshalBinary(at); err != nil {
			return nil, fmt.Errorf("read a spill file: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (f *spillFile) field() ([]byte, error) {
	n, err := binary.ReadUvarint(f.r)
	if err != nil {
		return nil, err // io.EOF at an event's start: the end
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.r, b); err != nil {
		return nil, fmt.Errorf("read a spill file: %w", err)
	}
	return b, nil
}
