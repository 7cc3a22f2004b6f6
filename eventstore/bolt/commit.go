package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	bbolt "go.etcd.io/bbolt"
)

// A request is one Append, encoded by its caller. All its keys and records
// live in one buffer that outlives the write transaction, as bbolt requires
// of what is Put.
type request struct {
	ctx      context.Context
	stream   string
	expected eventstore.ExpectedRevision

	schema  int
	recs    [][]byte // records, stamped by apply
	posKeys [][]byte // events keys; also the stream index values in schema 1
	idxKeys [][]byte // stream index keys
	size    int      // encoded bytes

	// Schema 1: the stream's index key prefix, and prefix ‖
	// be64(MaxUint64) to find its last revision.
	prefix []byte // uvarint(len(stream)) ‖ stream
	seek   []byte
	// Schema 2: the stream's name (its names key), ord(id) (filled by
	// apply: the id is known in the transaction), and the index values
	// (also schema 3's, when the index is written with the events).
	name    []byte
	idKey   []byte
	idxVals [][]byte
	// Schema 3: h(stream).
	hash streamHash

	done chan outcome // capacity 1: the committer never blocks on it
}

type outcome struct {
	res eventstore.AppendResult
	err error
}

func checkStreamName(stream string) error {
	switch {
	case stream == "":
		return fmt.Errorf("%w: empty stream name", eventstore.ErrInvalid)
	case len(stream) > maxStreamLen:
		return fmt.Errorf("%w: stream name of %d bytes (at most %d)", eventstore.ErrInvalid, len(stream), maxStreamLen)
	}
	return nil
}

// newRequest validates an append and encodes it. key is the key of h
// (schema 3).
func newRequest(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []aggregate.Event, maxBytes int, v1 bool, schema int, key *[streamKeyLen]byte) (*request, error) {
	invalid := func(err error) (*request, error) {
		return nil, fmt.Errorf("bolt: append %q: %w", stream, err)
	}
	if err := checkStreamName(stream); err != nil {
		return invalid(err)
	}
	if len(events) == 0 {
		return invalid(fmt.Errorf("%w: no events", eventstore.ErrInvalid))
	}
	if expected < eventstore.Any {
		return invalid(fmt.Errorf("%w: expected revision %d", eventstore.ErrInvalid, int64(expected)))
	}
	n := len(events)
	keyLen := streamPrefixLen(stream) + 8
	switch schema {
	case schema2:
		keyLen = 2*maxOrd + binary.MaxVarintLen64 // index key and value
	case schemaVersion:
		keyLen = hashLen + maxOrd + binary.MaxVarintLen64
	}
	size := keyLen // seek, or name and id
	for i, e := range events {
		if e.Type == "" {
			return invalid(fmt.Errorf("%w: event %d has no type", eventstore.ErrInvalid, i))
		}
		if v1 {
			size += recordLenV1(stream, e) + 8 + keyLen
		} else {
			size += recordLen(stream, e) + 8 + keyLen
		}
		if size > maxBytes {
			return invalid(fmt.Errorf("%w: events over %d bytes", eventstore.ErrInvalid, maxBytes))
		}
	}
	r := &request{
		ctx:      ctx,
		stream:   stream,
		expected: expected,
		schema:   schema,
		recs:     make([][]byte, n),
		posKeys:  make([][]byte, n),
		idxKeys:  make([][]byte, n),
		size:     size,
		done:     make(chan outcome, 1),
	}
	buf := make([]byte, 0, size)
	// carve appends to buf and returns what it appended, capped so that no
	// later append can reach into its neighbour.
	carve := func(appendTo func([]byte) []byte) []byte {
		start := len(buf)
		buf = appendTo(buf)
		return buf[start:len(buf):len(buf)]
	}
	switch schema {
	case schema1:
		r.seek = carve(func(b []byte) []byte { return appendStreamKey(b, stream, math.MaxUint64) })
		r.prefix = r.seek[: keyLen-8 : keyLen-8]
	case schema2:
		r.name = carve(func(b []byte) []byte { return append(b, stream...) })
		r.idKey = carve(func(b []byte) []byte { return append(b, make([]byte, maxOrd)...) })[:0]
		r.idxVals = make([][]byte, n)
	default:
		r.hash = hashStream(key, stream)
		r.idxVals = make([][]byte, n)
	}
	for i, e := range events {
		if v1 {
			r.recs[i] = carve(func(b []byte) []byte { return appendRecordV1(b, stream, e) })
		} else {
			r.recs[i] = carve(func(b []byte) []byte { return appendRecord(b, stream, e) })
		}
		r.posKeys[i] = carve(func(b []byte) []byte { return append(b, make([]byte, 8)...) })
		switch schema {
		case schema1:
			r.idxKeys[i] = carve(func(b []byte) []byte { return appendStreamKey(b, stream, 0) })
		case schema2:
			// Room to fill in apply: ord(id) ‖ ord(rev), uvarint(position).
			r.idxKeys[i] = carve(func(b []byte) []byte { return append(b, make([]byte, 2*maxOrd)...) })[:0]
			r.idxVals[i] = carve(func(b []byte) []byte { return append(b, make([]byte, binary.MaxVarintLen64)...) })[:0]
		default:
			// h ‖ ord(rev), uvarint(position), if the index is written
			// with the events.
			r.idxKeys[i] = carve(func(b []byte) []byte { return append(b, make([]byte, hashLen+maxOrd)...) })[:0]
			r.idxVals[i] = carve(func(b []byte) []byte { return append(b, make([]byte, binary.MaxVarintLen64)...) })[:0]
		}
	}
	return r, nil
}

// apply writes r in the transaction of b, after checking its expected
// revision against the stream as the transaction sees it (with the appends
// applied before it in the same transaction). A wrong revision writes
// nothing and returns an error matching eventstore.ErrWrongRevision; any
// other error may leave partial writes, so the transaction must be rolled
// back.
//
// In schema 3, with ov, the index entries are recorded in ov instead (see
// pending.go); without, they are written with the events. pend holds the
// entries in memory of earlier commits.
func apply(b buckets, r *request, at int64, ov overlay, pend *pendingIndex) (eventstore.AppendResult, error) {
	switch b.schema {
	case schema2:
		return apply2(b, r, at)
	case schemaVersion:
		return apply3(b, r, at, ov, pend)
	}
	last, exists := lastRevision(b.streams, r.prefix, r.seek)
	next, err := r.nextRevision(last, exists)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	pos := b.events.Sequence()
	for i, rec := range r.recs {
		pos++
		rev := next + uint64(i)
		stampRecord(rec, rev, at)
		binary.BigEndian.PutUint64(r.posKeys[i], pos)
		binary.BigEndian.PutUint64(r.idxKeys[i][len(r.prefix):], rev)
		if err := b.events.Put(r.posKeys[i], rec); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put event %d: %w", pos, err)
		}
		if err := b.streams.Put(r.idxKeys[i], r.posKeys[i]); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put index of event %d: %w", pos, err)
		}
	}
	if err := b.events.SetSequence(pos); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("set sequence %d: %w", pos, err)
	}
	return eventstore.AppendResult{
		NextRevision: next + uint64(len(r.recs)) - 1,
		Position:     eventstore.Position{Commit: pos, Prepare: pos},
	}, nil
}

// apply2 is apply in schema 2.
func apply2(b buckets, r *request, at int64) (eventstore.AppendResult, error) {
	var (
		last   uint64
		exists bool
		id     uint64
	)
	if v := b.names.Get(r.name); v != nil {
		var ok bool
		if id, _, ok = parseOrd(v); !ok {
			return eventstore.AppendResult{}, fmt.Errorf("%w: id of stream %q", errCorrupt, r.stream)
		}
		r.idKey = appendOrd(r.idKey[:0], id)
		var err error
		if last, exists, err = lastRevision2(b.index, r.idKey); err != nil {
			return eventstore.AppendResult{}, err
		}
		if !exists {
			return eventstore.AppendResult{}, fmt.Errorf("%w: stream %q has an id and no events", errCorrupt, r.stream)
		}
	}
	next, err := r.nextRevision(last, exists)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if !exists {
		if id, err = b.names.NextSequence(); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("new stream id: %w", err)
		}
		r.idKey = appendOrd(r.idKey[:0], id)
		if err := b.names.Put(r.name, r.idKey); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put id of stream %q: %w", r.stream, err)
		}
	}
	pos := b.events.Sequence()
	for i, rec := range r.recs {
		pos++
		rev := next + uint64(i)
		stampRecord(rec, rev, at)
		binary.BigEndian.PutUint64(r.posKeys[i], pos)
		r.idxKeys[i] = appendOrd(append(r.idxKeys[i][:0], r.idKey...), rev)
		r.idxVals[i] = binary.AppendUvarint(r.idxVals[i][:0], pos)
		if err := b.events.Put(r.posKeys[i], rec); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put event %d: %w", pos, err)
		}
		if err := b.index.Put(r.idxKeys[i], r.idxVals[i]); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put index of event %d: %w", pos, err)
		}
	}
	if err := b.events.SetSequence(pos); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("set sequence %d: %w", pos, err)
	}
	return eventstore.AppendResult{
		NextRevision: next + uint64(len(r.recs)) - 1,
		Position:     eventstore.Position{Commit: pos, Prepare: pos},
	}, nil
}

// An overlay is the index entries of one write transaction's appends, by
// stream (schema 3): they go to the store's pendingIndex once it commits.
type overlay map[streamHash]*pendingStream

// apply3 is apply in schema 3.
func apply3(b buckets, r *request, at int64, ov overlay, pend *pendingIndex) (eventstore.AppendResult, error) {
	var (
		last   uint64
		exists bool
	)
	if ps := ov[r.hash]; ps != nil {
		last, exists = ps.last(), true
	} else if ps := pend.get(r.hash); ps != nil {
		last, exists = ps.last(), true
	} else {
		var err error
		if last, exists, err = lastRevision2(b.index, r.hash[:]); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	next, err := r.nextRevision(last, exists)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	pos := b.events.Sequence()
	var ps *pendingStream
	if ov != nil {
		if ps = ov[r.hash]; ps == nil {
			ps = &pendingStream{first: next}
			ov[r.hash] = ps
		}
	}
	for i, rec := range r.recs {
		pos++
		rev := next + uint64(i)
		stampRecord(rec, rev, at)
		binary.BigEndian.PutUint64(r.posKeys[i], pos)
		if err := b.events.Put(r.posKeys[i], rec); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put event %d: %w", pos, err)
		}
		if ps != nil {
			ps.pos = append(ps.pos, pos)
			continue
		}
		r.idxKeys[i] = appendOrd(append(r.idxKeys[i][:0], r.hash[:]...), rev)
		r.idxVals[i] = binary.AppendUvarint(r.idxVals[i][:0], pos)
		if err := b.index.Put(r.idxKeys[i], r.idxVals[i]); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("put index of event %d: %w", pos, err)
		}
	}
	if err := b.events.SetSequence(pos); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("set sequence %d: %w", pos, err)
	}
	return eventstore.AppendResult{
		NextRevision: next + uint64(len(r.recs)) - 1,
		Position:     eventstore.Position{Commit: pos, Prepare: pos},
	}, nil
}

// runCommitter is the committer goroutine: it commits whatever is queued,
// one write transaction at a time, until Close has been called and the
// queue is empty.
func (s *Store) runCommitter() {
	defer close(s.committerDone)
	var batch []*request
	for {
		var closing bool
		batch, closing = s.take(batch[:0])
		if len(batch) > 0 {
			s.commit(batch)
			clear(batch) // drop references to answered requests
			continue
		}
		if closing {
			// An index the fold could not write (a full disk) is read
			// again from the events by the next Open: nothing is lost.
			_ = s.foldAll()
			return
		}
		select {
		case <-s.wake:
		case <-s.closing:
		}
	}
}

// take moves the oldest queued requests, up to maxBatchBytes (and at least
// one), to batch, and reports whether the store is closing.
func (s *Store) take(batch []*request) ([]*request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size, n := 0, 0
	for _, r := range s.queue {
		if n > 0 && size+r.size > maxBatchBytes {
			break
		}
		size += r.size
		n++
	}
	batch = append(batch, s.queue[:n]...)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch, s.closed
}

// commit writes batch in one write transaction and answers every request.
func (s *Store) commit(batch []*request) {
	live := answerCancelled(batch)
	for len(live) > 0 {
		outs, bad, err := s.tryCommit(live)
		switch {
		case err != nil:
			s.failAll(live, err)
			return
		case bad >= 0:
			// live[bad] failed midway and the transaction was rolled back:
			// fail that request alone and write the others again.
			s.stats.unavailable.Add(1)
			live[bad].done <- outs[bad]
			live = slices.Delete(live, bad, bad+1)
		default:
			s.answer(live, outs)
			return
		}
	}
}

// answerCancelled answers the requests whose caller stopped waiting before
// the commit started, with a definite "not written", and returns the
// others.
func answerCancelled(batch []*request) []*request {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- outcome{err: fmt.Errorf("bolt: append %q: before commit: %w", r.stream, err)}
			continue
		}
		live = append(live, r)
	}
	return live
}

// tryCommit applies live, in order, in one write transaction, and commits
// it unless every append was refused by its expected revision. It returns
// each request's outcome. bad >= 0 means live[bad] failed midway: the
// transaction was rolled back and nothing is written. err means the
// transaction could not begin or commit.
//
// In schema 3 the transaction also folds index entries held in memory into
// the index (see pending.go), and the entries of its appends join them
// once it has committed.
func (s *Store) tryCommit(live []*request) (outs []outcome, bad int, err error) {
	if s.pendingErr != nil {
		if s.reloadPending(); s.pendingErr != nil {
			return nil, -1, fmt.Errorf("index entries in memory: %w", s.pendingErr)
		}
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, -1, err
	}
	// bbolt reads AllocSize only in a write transaction's commit, which
	// this goroutine runs.
	if s.opts.growBy > 0 {
		s.db.AllocSize = s.opts.growBy
	} else {
		s.db.AllocSize = growStep(tx.Size())
	}
	b, err := openBuckets(tx, s.schema)
	if err != nil {
		_ = tx.Rollback()
		return nil, -1, err
	}
	var ov overlay
	if s.schema == schemaVersion && s.opts.IndexBufferBytes >= 0 {
		ov = overlay{}
	}
	outs, written, bad := applyAll(b, live, time.Now().UnixNano(), ov, &s.pending)
	if bad >= 0 || written == 0 {
		_ = tx.Rollback() // a partial write, or nothing to make durable
		return outs, bad, nil
	}
	var f fold
	if s.schema == schemaVersion {
		n := 0
		for _, ps := range ov {
			n += len(ps.pos)
		}
		if f, err = s.pending.fold(b, tx.Bucket(bucketMeta), s.pending.foldParts(n, s.opts.IndexBufferBytes)); err != nil {
			_ = tx.Rollback()
			return nil, -1, err
		}
	}
	head := b.events.Sequence()
	if s.opts.beforeCommit != nil {
		s.opts.beforeCommit()
	}
	if err := tx.Commit(); err != nil {
		return nil, -1, err
	}
	s.stats.commits.Add(1)
	if s.schema == schemaVersion {
		s.pendingCommitted(f, ov, head)
	}
	s.publishCommitted(live, outs, head)
	return outs, -1, nil
}

// pendingCommitted updates the index entries held in memory once the
// commit that folded f and appended ov is durable: the folded ones go,
// ov's join.
func (s *Store) pendingCommitted(f fold, ov overlay, head uint64) {
	p := &s.pending
	p.mu.Lock()
	p.folded(f, head)
	var err error
	for h, ps := range ov {
		if err = p.add(h, ps.first, ps.pos); err != nil {
			break
		}
	}
	p.mu.Unlock()
	if err != nil {
		// Never: the appends saw the entries they follow. Read them again
		// from the file rather than go on with a wrong revision.
		s.reloadPending()
	}
}

// reloadPending reads the index entries held in memory again from the
// file (committer only): after a commit that failed, which may or may not
// have reached it. If that fails too, no later commit can trust the
// entries: appends fail until it succeeds.
func (s *Store) reloadPending() {
	if s.schema != schemaVersion {
		return
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx, s.schema)
		if err != nil {
			return err
		}
		head, err := lastPosition(tx)
		if err != nil {
			return err
		}
		return s.pending.load(tx, b, &s.streamKey, head, s.opts.noScanAdvice)
	})
	s.pendingErr = err
}

// foldAll folds every index entry held in memory into the index, and
// writes the head as the indexed position (when the store closes: the next
// Open reads no event again). It sweeps the whole hash space anew in
// closeFoldParts transactions, so that no commit frees (and leaves free
// in the file) more than a slice of the index's pages.
func (s *Store) foldAll() error {
	if s.schema != schemaVersion || s.pendingErr != nil {
		return nil
	}
	p := &s.pending
	head := s.head.Load()
	if p.entries == 0 && p.indexed == head {
		return nil
	}
	p.next, p.cycleHead = 0, head
	for {
		tx, err := s.db.Begin(true)
		if err != nil {
			return fmt.Errorf("bolt: close %s: fold index: %w", s.path, err)
		}
		b, err := openBuckets(tx, s.schema)
		var f fold
		if err == nil {
			f, err = p.fold(b, tx.Bucket(bucketMeta), nParts/closeFoldParts)
		}
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		if err != nil {
			return fmt.Errorf("bolt: close %s: fold index: %w", s.path, err)
		}
		p.mu.Lock()
		p.folded(f, head)
		p.mu.Unlock()
		if f.endCycle {
			return nil
		}
	}
}

// applyAll applies every request in b, each seeing the ones before it, and
// returns their outcomes and how many were written. It stops at the first
// that fails other than by its expected revision: bad is its index (-1 when
// none did).
func applyAll(b buckets, live []*request, at int64, ov overlay, pend *pendingIndex) (outs []outcome, written, bad int) {
	outs = make([]outcome, 0, len(live))
	for i, r := range live {
		res, err := apply(b, r, at, ov, pend)
		if err != nil && !errors.Is(err, eventstore.ErrWrongRevision) {
			return append(outs, outcome{err: unavailable(r.stream, err)}), written, i
		}
		if err == nil {
			written++
		}
		outs = append(outs, outcome{res: res, err: err})
	}
	return outs, written, -1
}

// publishCommitted puts the records just committed in the tail, then wakes
// the subscribers: one woken by publish finds the events there.
func (s *Store) publishCommitted(live []*request, outs []outcome, head uint64) {
	var (
		first uint64
		recs  [][]byte
	)
	for i, r := range live {
		if outs[i].err == nil {
			if first == 0 {
				first = binary.BigEndian.Uint64(r.posKeys[0])
			}
			recs = append(recs, r.recs...)
		}
	}
	s.tail.add(first, recs)
	s.publish(head)
}

// answer counts the outcomes of a committed (or wholly refused) transaction
// and answers every request.
func (s *Store) answer(live []*request, outs []outcome) {
	for i, r := range live {
		if outs[i].err != nil {
			s.stats.wrongRevisions.Add(1)
		} else {
			s.stats.appends.Add(1)
			s.stats.events.Add(uint64(len(r.recs)))
		}
		r.done <- outs[i]
	}
}

// failAll answers every request of a failed write transaction with
// ErrUnavailable. A failed commit may still have reached the file (bbolt
// writes the meta page before its last fsync), so the head is re-read.
func (s *Store) failAll(live []*request, err error) {
	// The file may hold events of this commit: the tail no longer ends at
	// the head.
	s.tail.reset()
	// Counted before answering: a caller that reads Stats after its
	// Append failed sees its failure.
	s.stats.unavailable.Add(uint64(len(live)))
	for _, r := range live {
		r.done <- outcome{err: unavailable(r.stream, err)}
	}
	var head uint64
	if s.db.View(func(tx *bbolt.Tx) (err error) {
		head, err = lastPosition(tx)
		return err
	}) == nil {
		s.publish(head)
	}
	// Likewise the index entries held in memory.
	s.reloadPending()
}

// nextRevision checks r's expected revision against the stream's (last,
// if it exists) and returns the revision r's first event gets.
func (r *request) nextRevision(last uint64, exists bool) (uint64, error) {
	actual := eventstore.NoStream
	if exists {
		actual = eventstore.Exact(last)
	}
	if r.expected != eventstore.Any && r.expected != actual {
		return 0, fmt.Errorf("bolt: append %q: %w", r.stream,
			&eventstore.WrongRevisionError{Stream: r.stream, Expected: r.expected, Actual: actual})
	}
	if !exists {
		return 0, nil
	}
	return last + 1, nil
}
