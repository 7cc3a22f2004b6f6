package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	bbolt "go.etcd.io/bbolt"
)

// Every bucket and fixed key of the file, in one place.
//
//	meta     "schema"                                  -> be64(schemaVersion)
//	events   be64(position)                            -> record (see record.go)
//	streams  uvarint(len(stream)) ‖ stream ‖ be64(rev) -> be64(position)
//
// Positions start at 1 and the events bucket's sequence (bbolt's per-bucket
// counter, written in the same transaction as the events) is the last one
// used. A stream's current revision is its last key in streams: no separate
// heads bucket, so an append dirties one index page per stream, not two.
//
// The length prefix makes stream keys prefix-free: the keys of one stream are
// exactly those starting with uvarint(len(stream)) ‖ stream, contiguous and
// in revision order, whatever bytes stream names contain.
var (
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	bucketStreams = []byte("streams")

	keySchema = []byte("schema")
)

// schemaVersion is the layout above. A file with another version is refused.
const schemaVersion = 1

// fillAppendOnly is the FillPercent of the events bucket: its keys only ever
// grow, so a split page never receives a key again and half-filling it (the
// default) would waste half of every page.
const fillAppendOnly = 1.0

// maxStreamLen bounds a stream name, far below bbolt's key limit.
const maxStreamLen = 1024

// buckets are the buckets of one transaction.
type buckets struct {
	events  *bbolt.Bucket
	streams *bbolt.Bucket
}

func openBuckets(tx *bbolt.Tx) (buckets, error) {
	b := buckets{events: tx.Bucket(bucketEvents), streams: tx.Bucket(bucketStreams)}
	if b.events == nil || b.streams == nil {
		return buckets{}, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	if tx.Writable() {
		b.events.FillPercent = fillAppendOnly
	}
	return b, nil
}

// initSchema creates the buckets of a new file and checks an existing one.
func initSchema(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketEvents) != nil || tx.Bucket(bucketStreams) != nil {
				return fmt.Errorf("%w: events without a schema version", errCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchema, be64(schemaVersion)); err != nil {
				return err
			}
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("%w: malformed schema version", errCorrupt)
		}
		if got := binary.BigEndian.Uint64(v); got != schemaVersion {
			return fmt.Errorf("unsupported schema version %d (this build reads %d)", got, schemaVersion)
		}
		for _, name := range [][]byte{bucketEvents, bucketStreams} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// lastPosition returns the position of the last event, checking that the
// events bucket's sequence agrees with its last key.
func lastPosition(tx *bbolt.Tx) (uint64, error) {
	b, err := openBuckets(tx)
	if err != nil {
		return 0, err
	}
	seq := b.events.Sequence()
	k, _ := b.events.Cursor().Last()
	var last uint64
	if k != nil {
		if len(k) != 8 {
			return 0, fmt.Errorf("%w: event key of %d bytes", errCorrupt, len(k))
		}
		last = binary.BigEndian.Uint64(k)
	}
	if last != seq {
		return 0, fmt.Errorf("%w: last event at %d, sequence at %d", errCorrupt, last, seq)
	}
	return seq, nil
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// streamPrefixLen is the length of uvarint(len(stream)) ‖ stream.
func streamPrefixLen(stream string) int {
	return uvarintLen(uint64(len(stream))) + len(stream)
}

// appendStreamKey appends uvarint(len(stream)) ‖ stream ‖ be64(rev) to dst.
func appendStreamKey(dst []byte, stream string, rev uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	return binary.BigEndian.AppendUint64(dst, rev)
}

// inStream reports whether k is an index key of the stream whose prefix is
// prefix.
func inStream(k, prefix []byte) bool {
	return len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix)
}

// lastRevision returns the revision of the last event of the stream whose
// index keys start with prefix. seek is prefix ‖ be64(MaxUint64). It sees the
// writes of the transaction it runs in.
func lastRevision(streams *bbolt.Bucket, prefix, seek []byte) (rev uint64, exists bool) {
	c := streams.Cursor()
	k, _ := c.Seek(seek)
	switch {
	case k == nil:
		k, _ = c.Last()
	case bytes.Equal(k, seek):
		return math.MaxUint64, true
	default:
		k, _ = c.Prev()
	}
	if k == nil || !inStream(k, prefix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), true
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
