package projections

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/receiptd/receiptd/aggregate"
	bolt "go.etcd.io/bbolt"
)

// DefaultCacheBytes is the record cache's budget when Open is given none
// (WithCacheBytes).
const DefaultCacheBytes = 64 << 20

// cache holds decoded read-model records across batches: a receipt's
// facts, view and statistics record, users' balance states, statistics
// aggregates and entities. An event changes the decoded records in place;
// a record is encoded and written once per commit however many events of
// the batch changed it, and a record that stays cached is never decoded
// again. Its size is bounded by a budget in bytes (estimated, see the
// size methods): past it, clean records are dropped after a commit.
//
// With deferred writes (the scratch file of a rebuild or an audit, which
// nobody reads until it is complete), changed records are not written at
// every commit but only when the budget makes them leave the cache, and
// at the end (flushAll): a receipt whose events all fall within the
// budget's reach is encoded and written once.
//
// It is used under DB.applyMu only. Any failed commit resets it: the
// records it held may carry changes the file does not.
type cache struct {
	budget int64
	size   int64

	receipts map[string]*receiptEntry
	users    map[string]*userEntry
	stats    map[string]*statsEntry
	entities map[string]*entityEntry

	dirtyReceipts []*receiptEntry
	dirtyUsers    []*userEntry
	dirtyStats    []*statsEntry
	dirtyEntities []*entityEntry

	// receiptChanges counts changedReceipt's calls since the cache was
	// made (a bulk build's digests need the receipts' records to be its
	// workers' alone: bulkdigest.go).
	receiptChanges int64
}

func newCache(budget int64) *cache {
	c := &cache{budget: budget}
	c.reset()
	return c
}

// reset drops every record.
func (c *cache) reset() {
	c.size = 0
	c.receipts = make(map[string]*receiptEntry)
	c.users = make(map[string]*userEntry)
	c.stats = make(map[string]*statsEntry)
	c.entities = make(map[string]*entityEntry)
	c.dirtyReceipts, c.dirtyUsers, c.dirtyStats, c.dirtyEntities = nil, nil, nil, nil
}

// Estimated sizes in memory of cached records: what the budget counts.
// Measured: 20,000 six-event receipts (and their 5,000 users) held
// 4.3 KB of Go heap per receipt. The budget counts live records; the Go
// heap around them may grow to twice as much between collections
// (GOGC=100) unless the process sets a memory limit.
const (
	entryOverhead = 400
	factSize      = 560
	userSize      = 480
	statsAggSize  = 480
	entitySize    = 960
)

// receiptEntry is a receipt's record (bucketReceiptState), decoded, and
// what is derived from it.
type receiptEntry struct {
	key []byte
	receiptState
	// view is the aggregate's view and counted its statistics
	// contribution (contribution of view and received), when existed.
	view    aggregate.ReceiptView
	counted statsContribution
	// existed: the receipt has a view (an event of it was applied).
	existed bool
	dirty   bool
	size    int64
}

func (r *receiptEntry) estimate() int64 {
	return entryOverhead + int64(len(r.key)) + factSize*int64(1+r.agg.Len())
}

// receipt returns a receipt's records, reading them on a miss.
func (a *applier) receipt(source, receiptID string) (*receiptEntry, error) {
	k := key(source, receiptID)
	if r, ok := a.c.receipts[string(k)]; ok {
		return r, nil
	}
	r := &receiptEntry{key: k}
	if raw := a.get(bucketReceiptState, k); raw != nil {
		st, err := decodeReceiptState(raw, source, receiptID)
		if err != nil {
			return nil, err
		}
		r.receiptState = st
		r.existed = true
		r.view = r.agg.View()
		r.counted = contribution(&r.view, &r.received)
	} else {
		r.agg = aggregate.NewReceipt(source, receiptID)
	}
	r.size = r.estimate()
	a.c.size += r.size
	a.c.receipts[string(k)] = r
	return r, nil
}

// get reads a stored record (none without a transaction: a bulk build's
// workers build new records only).
func (a *applier) get(bucket, k []byte) []byte {
	if a.tx == nil {
		return nil
	}
	return a.tx.Bucket(bucket).Get(k)
}

// changedReceipt marks r to be written.
func (c *cache) changedReceipt(r *receiptEntry) {
	c.receiptChanges++
	if s := r.estimate(); s != r.size {
		c.size += s - r.size
		r.size = s
	}
	if !r.dirty {
		r.dirty = true
		c.dirtyReceipts = append(c.dirtyReceipts, r)
	}
}

func (r *receiptEntry) write(tx *bolt.Tx, ar *arena) error {
	v := ar.add(func(b []byte) []byte { return appendReceiptState(b, &r.receiptState) })
	if err := tx.Bucket(bucketReceiptState).Put(r.key, v); err != nil {
		return err
	}
	r.dirty = false
	return nil
}

// arena holds the encoded records of one transaction: bbolt keeps the
// slice Put was given until the commit writes its page, so no record may
// reuse another's bytes, but they may share allocations.
type arena struct{ buf []byte }

// add appends a record with fill and returns it.
func (a *arena) add(fill func([]byte) []byte) []byte {
	if cap(a.buf)-len(a.buf) < 512 {
		a.buf = make([]byte, 0, 64<<10)
	}
	start := len(a.buf)
	a.buf = fill(a.buf)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// userEntry is a user's balance state.
type userEntry struct {
	key     []byte
	rec     userRecord
	existed bool // it is stored (or will be at the next write)
	dirty   bool // changed or created since it was last written
}

// user returns a user's balance state, reading it on a miss (a new user's
// is empty). An event touches its user's state several times, and a batch
// often holds several events of one user.
func (a *applier) user(source, userID string) (*userEntry, error) {
	return a.userByKey(key(source, userID))
}

// userByKey is user by the user's key.
func (a *applier) userByKey(k []byte) (*userEntry, error) {
	if u, ok := a.c.users[string(k)]; ok {
		return u, nil
	}
	u := &userEntry{key: k, rec: newUserRecord()}
	if raw := a.get(bucketUsers, k); raw != nil {
		rec, err := decodeUserRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", k, err)
		}
		u.rec, u.existed = rec, true
	}
	a.c.users[string(k)] = u
	a.c.size += entryOverhead + userSize + int64(len(k))
	return u, nil
}

func (c *cache) changedUser(u *userEntry) {
	if !u.dirty {
		u.dirty = true
		c.dirtyUsers = append(c.dirtyUsers, u)
	}
}

// statsEntry is a statistics record (bucketStatsDays or bucketStatsTotals).
type statsEntry struct {
	bucket, key []byte
	agg         statsAgg
	dirty       bool
}

// statsRecord returns the statistics record at key in bucket, reading it
// on a miss. A source's totals change with every receipt.
func (a *applier) statsRecord(bucket, k []byte) (*statsAgg, error) {
	ck := string(bucket) + "\x00" + string(k)
	e, ok := a.c.stats[ck]
	if !ok {
		e = &statsEntry{bucket: bucket, key: append([]byte(nil), k...), agg: newStatsAgg()}
		if raw := a.get(bucket, k); raw != nil {
			agg, err := decodeStatsAgg(raw)
			if err != nil {
				return nil, fmt.Errorf("stats %q: %w", k, err)
			}
			e.agg = agg
		}
		a.c.stats[ck] = e
		a.c.size += entryOverhead + statsAggSize + int64(len(ck))
	}
	if !e.dirty {
		e.dirty = true
		a.c.dirtyStats = append(a.c.dirtyStats, e)
	}
	return &e.agg, nil
}

// write stores the record; one whose receipts all went away is deleted,
// so a set of receipts has one encoding.
func (e *statsEntry) write(tx *bolt.Tx, ar *arena) error {
	b := tx.Bucket(e.bucket)
	e.dirty = false
	if e.agg.empty() {
		return b.Delete(e.key)
	}
	return b.Put(e.key, ar.add(func(b []byte) []byte { return appendStatsAgg(b, &e.agg) }))
}

// entityEntry is an entity's record (bucketEntities).
type entityEntry struct {
	key     []byte
	rec     entityRecord
	existed bool
	dirty   bool
}

// entity returns an entity's record, reading it on a miss.
func (a *applier) entity(source, kind, id string) (*entityEntry, error) {
	k := entityKey(source, kind, id)
	if e, ok := a.c.entities[string(k)]; ok {
		return e, nil
	}
	e := &entityEntry{key: k}
	switch err := getJSON(a.tx.Bucket(bucketEntities), k, &e.rec); {
	case err == nil:
		e.existed = true
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("entity %s/%s: %w", kind, id, err)
	}
	a.c.entities[string(k)] = e
	a.c.size += entryOverhead + entitySize + int64(len(k))
	return e, nil
}

func (c *cache) changedEntity(e *entityEntry) {
	if !e.dirty {
		e.dirty = true
		c.dirtyEntities = append(c.dirtyEntities, e)
	}
}

// flush writes every changed record, each kind in key order.
func (c *cache) flush(tx *bolt.Tx) error {
	slices.SortFunc(c.dirtyReceipts, func(a, b *receiptEntry) int { return bytes.Compare(a.key, b.key) })
	return c.flushSorted(tx)
}

// flushSorted is flush with the changed receipts already in key order.
func (c *cache) flushSorted(tx *bolt.Tx) error {
	var ar arena
	for _, r := range c.dirtyReceipts {
		if err := r.write(tx, &ar); err != nil {
			return err
		}
	}
	slices.SortFunc(c.dirtyUsers, func(a, b *userEntry) int { return bytes.Compare(a.key, b.key) })
	users := tx.Bucket(bucketUsers)
	for _, u := range c.dirtyUsers {
		if err := users.Put(u.key, ar.add(func(b []byte) []byte { return appendUserRecord(b, &u.rec) })); err != nil {
			return err
		}
		u.existed, u.dirty = true, false
	}
	slices.SortFunc(c.dirtyStats, func(a, b *statsEntry) int {
		if n := bytes.Compare(a.bucket, b.bucket); n != 0 {
			return n
		}
		return bytes.Compare(a.key, b.key)
	})
	for _, e := range c.dirtyStats {
		if err := e.write(tx, &ar); err != nil {
			return err
		}
	}
	slices.SortFunc(c.dirtyEntities, func(a, b *entityEntry) int { return bytes.Compare(a.key, b.key) })
	entities := tx.Bucket(bucketEntities)
	for _, e := range c.dirtyEntities {
		if err := putJSON(entities, e.key, e.rec); err != nil {
			return err
		}
		e.existed, e.dirty = true, false
	}
	c.dirtyReceipts, c.dirtyUsers, c.dirtyStats, c.dirtyEntities = c.dirtyReceipts[:0], c.dirtyUsers[:0], c.dirtyStats[:0], c.dirtyEntities[:0]
	return nil
}

// shrink drops records until the cache is within 7/8 of its budget. With
// tx (deferred writes), it first writes every changed record, so that
// any record may go; without, changed records must have been written
// (flush) and only clean ones are dropped. Which records go is left to
// map order: recently used and cold records alike.
func (c *cache) shrink(tx *bolt.Tx) error {
	if c.size <= c.budget {
		return nil
	}
	if tx != nil {
		if err := c.flush(tx); err != nil {
			return err
		}
	}
	target := c.budget - c.budget/8
	for k, r := range c.receipts {
		if c.size <= target {
			return nil
		}
		if !r.dirty {
			delete(c.receipts, k)
			c.size -= r.size
		}
	}
	for k, e := range c.entities {
		if c.size <= target {
			return nil
		}
		if !e.dirty {
			delete(c.entities, k)
			c.size -= entryOverhead + entitySize + int64(len(k))
		}
	}
	for k, u := range c.users {
		if c.size <= target {
			return nil
		}
		if !u.dirty {
			delete(c.users, k)
			c.size -= entryOverhead + userSize + int64(len(k))
		}
	}
	for k, e := range c.stats {
		if c.size <= target {
			return nil
		}
		if !e.dirty {
			delete(c.stats, k)
			c.size -= entryOverhead + statsAggSize + int64(len(k))
		}
	}
	return nil
}
