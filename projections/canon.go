package projections

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	bolt "go.etcd.io/bbolt"
)

// The canonical form of the read models is what audits compare, what
// ModelSummary digests and what Dump writes: the buckets, keys and JSON
// values that schema 4 stored, re-derived from the binary records with the
// hand-written encoders (jsonenc.go), which write encoding/json's bytes.
// So the digests of a log's read models do not depend on the version that
// built them (TestDigestsOfAnOlderVersionsLog), and an audit names the
// first differing key in the terms of the read models' JSON.
//
// A canonical bucket is derived from one stored bucket, key for key; a
// stored receipt record (bucketReceiptState) gives three: its facts, its
// view and its statistics record. A stored record that does not decode
// has a canonical value that no record has ("corrupt record: " and its
// bytes in hex), so an audit reports it as a differing value.

// canonBucket is one bucket of the canonical form.
type canonBucket struct {
	name   []byte
	stored []byte
	// value returns the canonical value of a stored key and value,
	// appended to buf; nil value: the stored value is canonical.
	value func(buf, k, v []byte) ([]byte, error)
}

// canonBuckets lists every canonical bucket but bucketMeta.
var canonBuckets = []canonBucket{
	{bucketReceiptFacts, bucketReceiptState, canonFacts},
	{bucketReceipts, bucketReceiptState, canonReceipt},
	{bucketUserReceipts, bucketUserReceipts, nil},
	{bucketUsers, bucketUsers, canonUser},
	{bucketLedger, bucketLedger, canonLedger},
	{bucketQuarantine, bucketQuarantine, nil},
	{bucketSkipped, bucketSkipped, nil},
	{bucketEntities, bucketEntities, nil},
	{bucketEntityIndex, bucketEntityIndex, nil},
	{bucketEntityTimeline, bucketEntityTimeline, nil},
	{bucketStatsReceipts, bucketReceiptState, canonStatsReceipt},
	{bucketStatsDays, bucketStatsDays, canonStatsAgg},
	{bucketStatsTotals, bucketStatsTotals, canonStatsAgg},
	{bucketFeed, bucketFeed, canonFeed},
	{bucketInProgress, bucketInProgress, nil},
}

// canonical returns the canonical bucket called name.
func canonical(name []byte) canonBucket {
	for _, c := range canonBuckets {
		if string(c.name) == string(name) {
			return c
		}
	}
	panic(fmt.Sprintf("projections: no canonical bucket %q", name))
}

// errNoJSON: a record holds a value encoding/json refuses (a time outside
// years 0–9999); the applier never stores one.
var errNoJSON = errors.New("projections: a record without a JSON form")

// canonValue returns c's value for a stored key and value (see
// canonBucket.value), or the corrupt record marker.
func (c *canonBucket) canonValue(buf, k, v []byte) ([]byte, error) {
	if c.value == nil {
		return v, nil
	}
	out, err := c.value(buf[:0], k, v)
	if errors.Is(err, errCorrupt) {
		out = append(buf[:0], "corrupt record: "...)
		return hex.AppendEncode(out, v), nil
	}
	return out, err
}

// finish returns e's bytes appended to buf, or errNoJSON.
func (e *enc) finish(what string, k []byte) ([]byte, error) {
	if e.bad {
		return nil, fmt.Errorf("%s %q: %w", what, k, errNoJSON)
	}
	return e.b, nil
}

// receiptOf decodes a stored receipt record.
func receiptOf(k, v []byte) (receiptState, error) {
	source, id, err := receiptKeyParts(k, v)
	if err != nil {
		return receiptState{}, err
	}
	return decodeReceiptState(v, source, id)
}

// canonFeed: a stored feed event's plain form (feed.Canonical; schema 6
// stored it so, schema 8 compressed).
func canonFeed(buf, k, v []byte) ([]byte, error) {
	out, err := feed.Canonical(buf, v)
	if err != nil {
		return nil, fmt.Errorf("feed event %x: %w: %w", k, err, errCorrupt)
	}
	return out, nil
}

func canonFacts(buf, k, v []byte) ([]byte, error) {
	st, err := receiptOf(k, v)
	if err != nil {
		return nil, err
	}
	e := enc{b: buf}
	e.facts(st.agg.Facts())
	return e.finish("facts of receipt", k)
}

func canonReceipt(buf, k, v []byte) ([]byte, error) {
	st, err := receiptOf(k, v)
	if err != nil {
		return nil, err
	}
	rec := receiptRecord{View: st.agg.View(), FirstPosition: st.first, LastPosition: st.last}
	e := enc{b: buf}
	e.receiptRecord(&rec)
	return e.finish("receipt", k)
}

func canonStatsReceipt(buf, k, v []byte) ([]byte, error) {
	st, err := receiptOf(k, v)
	if err != nil {
		return nil, err
	}
	view := st.agg.View()
	e := enc{b: buf}
	statsReceiptOf(&e, &st, &view)
	return e.finish("statistics of receipt", k)
}

// statsReceiptOf encodes the statistics record of a receipt's record
// whose view is view.
func statsReceiptOf(e *enc, st *receiptState, view *aggregate.ReceiptView) {
	c := contribution(view, &st.received)
	sr := statsReceipt{Received: map[aggregate.Stage]time.Time{}, Counted: &c}
	for i, s := range aggregate.Stages {
		if len(st.agg.StageFacts(i)) > 0 {
			sr.Received[s] = st.received[i]
		}
	}
	e.statsReceipt(&sr)
}

func canonUser(buf, k, v []byte) ([]byte, error) {
	u, err := decodeUserRecord(v)
	if err != nil {
		return nil, err
	}
	e := enc{b: buf}
	e.userRecord(&u)
	return e.finish("user", k)
}

func canonLedger(buf, k, v []byte) ([]byte, error) {
	entry, err := decodeLedgerEntry(v, ledgerKeyCommit(k))
	if err != nil {
		return nil, err
	}
	e := enc{b: buf}
	e.ledgerEntry(&entry)
	return e.finish("ledger entry", k)
}

func canonStatsAgg(buf, k, v []byte) ([]byte, error) {
	s, err := decodeStatsAgg(v)
	if err != nil {
		return nil, err
	}
	e := enc{b: buf}
	e.statsAgg(&s)
	return e.finish("statistics", k)
}

// forEachCanonical calls fn with every key and canonical value of the
// canonical bucket c in tx, in key order. The value is valid until fn
// returns.
func forEachCanonical(tx *bolt.Tx, c canonBucket, fn func(k, v []byte) error) error {
	b := tx.Bucket(c.stored)
	if b == nil {
		return nil
	}
	var buf []byte
	return b.ForEach(func(k, v []byte) error {
		cv, err := c.canonValue(buf, k, v)
		if err != nil {
			return err
		}
		if c.value != nil {
			buf = cv
		}
		return fn(k, cv)
	})
}
