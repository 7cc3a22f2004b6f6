package bolt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	bbolt "go.etcd.io/bbolt"
)

// Every bucket and fixed key of the file, in one place. Schema 3, the
// layout of every new file:
//
//	meta     "schema"                         -> be64(3)
//	         "streamkey"                      -> 32 random bytes, the key of h
//	         "indexed"                        -> be64(P)
//	events   be64(position)                   -> record (see record.go)
//	index    h(stream) ‖ ord(rev)             -> uvarint(position)
//
// h(stream) is the first 16 bytes of SHA-256(streamkey ‖ stream): a
// stream's index keys are the 17 to 20 bytes starting with its h, whatever
// its name's length. The key is drawn when the file is created, so no one
// can choose names that collide without reading the file; by chance, two of
// 10^9 streams share an h with a probability of 10^-21 (ReadStream checks
// the stream of every record it returns, and Verify every entry).
//
// The index is written lazily (see pending.go): an append writes its
// events, and its index entries stay in memory until the committer folds
// them into the index, a slice of the hash space per commit, so that a
// leaf page of the index is written once for many entries rather than once
// per append. Every event at a position up to P has its entry in the index
// (events after P may have theirs already); Open reads the events after P
// to rebuild the entries in memory. An index is derived data: the events
// bucket alone is the log.
//
// ord(v) is an order-preserving, prefix-free encoding of a number: one byte
// n, then v in n big-endian bytes, n as small as it can be (0 for 0). So
// the index keys of one stream are exactly those starting with its h (or,
// in schema 2, its ord(id)), contiguous and in revision order.
//
// Schema 2, the layout of files written before schema 3 (still read and
// written, never converted; the index is written with every commit):
//
//	meta     "schema"                         -> be64(2)
//	events   be64(position)                   -> record
//	names    stream                           -> ord(id)
//	index    ord(id) ‖ ord(rev)               -> uvarint(position)
//
// A stream gets an id, 1, 2, 3… (the names bucket's sequence), with its
// first event.
//
// Schema 1, the layout of files written before schema 2 (likewise):
//
//	meta     "schema"                                  -> be64(1)
//	events   be64(position)                            -> record
//	streams  uvarint(len(stream)) ‖ stream ‖ be64(rev) -> be64(position)
//
// The length prefix makes stream keys prefix-free: the keys of one stream
// are exactly those starting with uvarint(len(stream)) ‖ stream.
//
// Positions start at 1 and the events bucket's sequence (bbolt's per-bucket
// counter, written in the same transaction as the events) is the last one
// used. A stream's current revision is its last key in the index (in
// schema 3, its last entry held in memory if it has one): no separate heads
// bucket.
var (
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	bucketStreams = []byte("streams") // schema 1
	bucketNames   = []byte("names")   // schema 2
	bucketIndex   = []byte("index")   // schema 2

	keySchema    = []byte("schema")
	keyStreamKey = []byte("streamkey") // schema 3
	keyIndexed   = []byte("indexed")   // schema 3
)

// The schemas: a new file is written in schemaVersion; a file in another
// version than these three is refused.
const (
	schema1       = 1
	schema2       = 2
	schemaVersion = 3
)

// supportedSchema reports whether this build reads and writes files in
// version v.
func supportedSchema(v uint64) bool { return v >= schema1 && v <= schemaVersion }

// hashLen is the length of h(stream), streamKeyLen of its key.
const (
	hashLen      = 16
	streamKeyLen = 32
)

// A streamHash is h(stream) (schema 3).
type streamHash [hashLen]byte

// hashStream returns h(stream) under key.
func hashStream(key *[streamKeyLen]byte, stream string) streamHash {
	var buf [streamKeyLen + 128]byte // most names: no allocation
	sum := sha256.Sum256(append(append(buf[:0], key[:]...), stream...))
	return streamHash(sum[:hashLen])
}

// fillAppendOnly is the FillPercent of the events bucket: its keys only ever
// grow, so a split page never receives a key again and half-filling it (the
// default) would waste half of every page.
const fillAppendOnly = 1.0

// maxStreamLen bounds a stream name, far below bbolt's key limit.
const maxStreamLen = 1024

// buckets are the buckets of one transaction.
type buckets struct {
	schema  int
	events  *bbolt.Bucket
	streams *bbolt.Bucket // schema 1
	names   *bbolt.Bucket // schema 2
	index   *bbolt.Bucket // schema 2
}

func openBuckets(tx *bbolt.Tx, schema int) (buckets, error) {
	b := buckets{schema: schema, events: tx.Bucket(bucketEvents)}
	missing := b.events == nil
	if schema == schema1 {
		b.streams = tx.Bucket(bucketStreams)
		missing = missing || b.streams == nil
	} else if schema == schema2 {
		b.names, b.index = tx.Bucket(bucketNames), tx.Bucket(bucketIndex)
		missing = missing || b.names == nil || b.index == nil
	} else {
		b.index = tx.Bucket(bucketIndex)
		missing = missing || b.index == nil
	}
	if missing {
		return buckets{}, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	if tx.Writable() {
		// The index keeps bbolt's default (half-filled pages after a
		// split): its keys arrive at random, and fuller splits made it
		// larger (BenchmarkAppendLoaded at 0.75, 0.9 and 1.0: 4,320,
		// 6,226 and 9,083 leaves for 300,000 entries, against 3,848).
		b.events.FillPercent = fillAppendOnly
	}
	return b, nil
}

// fileMeta is what the meta bucket says of a file.
type fileMeta struct {
	schema int
	// Schema 3: the key of h, and the position up to which every event is
	// in the index.
	streamKey [streamKeyLen]byte
	indexed   uint64
}

// initSchema creates the buckets of a new file (in newSchema) and checks
// an existing one, returning what its meta bucket says.
func initSchema(db *bbolt.DB, newSchema int) (fm fileMeta, err error) {
	err = db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketEvents) != nil || tx.Bucket(bucketStreams) != nil || tx.Bucket(bucketIndex) != nil {
				return fmt.Errorf("%w: events without a schema version", errCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchema, be64(uint64(newSchema))); err != nil {
				return err
			}
			if newSchema == schemaVersion {
				var key [streamKeyLen]byte
				if _, err := rand.Read(key[:]); err != nil {
					return err
				}
				if err := meta.Put(keyStreamKey, key[:]); err != nil {
					return err
				}
				if err := meta.Put(keyIndexed, be64(0)); err != nil {
					return err
				}
			}
		}
		var err error
		if fm, err = readMeta(meta); err != nil {
			return err
		}
		var names [][]byte
		switch fm.schema {
		case schemaVersion:
			names = [][]byte{bucketEvents, bucketIndex}
		case schema2:
			names = [][]byte{bucketEvents, bucketNames, bucketIndex}
		case schema1:
			names = [][]byte{bucketEvents, bucketStreams}
		}
		for _, name := range names {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	return fm, err
}

// readMeta reads and checks the meta bucket.
func readMeta(meta *bbolt.Bucket) (fileMeta, error) {
	var fm fileMeta
	if meta == nil {
		return fm, fmt.Errorf("%w: no meta bucket (not a receiptd event store)", errCorrupt)
	}
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return fm, fmt.Errorf("%w: malformed schema version", errCorrupt)
	}
	got := binary.BigEndian.Uint64(v)
	if !supportedSchema(got) {
		return fm, fmt.Errorf("unsupported schema version %d (this build reads %d to %d)", got, schema1, schemaVersion)
	}
	fm.schema = int(got)
	if fm.schema == schemaVersion {
		k, p := meta.Get(keyStreamKey), meta.Get(keyIndexed)
		if len(k) != streamKeyLen || len(p) != 8 {
			return fm, fmt.Errorf("%w: malformed stream key or indexed position", errCorrupt)
		}
		copy(fm.streamKey[:], k)
		fm.indexed = binary.BigEndian.Uint64(p)
	}
	return fm, nil
}

// lastPosition returns the position of the last event, checking that the
// events bucket's sequence agrees with its last key.
func lastPosition(tx *bbolt.Tx) (uint64, error) {
	events := tx.Bucket(bucketEvents)
	if events == nil {
		return 0, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	seq := events.Sequence()
	k, _ := events.Cursor().Last()
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

// appendOrd appends ord(v) (see the schema) to dst.
func appendOrd(dst []byte, v uint64) []byte {
	n := 0
	for x := v; x > 0; x >>= 8 {
		n++
	}
	dst = append(dst, byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// maxOrd is the longest ord.
const maxOrd = 9

// parseOrd reads ord(v) from the start of b.
func parseOrd(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 || b[0] > 8 || len(b) < 1+int(b[0]) {
		return 0, 0, false
	}
	for _, c := range b[1 : 1+b[0]] {
		v = v<<8 | uint64(c)
	}
	return v, 1 + int(b[0]), true
}

// lastRevision2 returns the revision of the last event of the stream whose
// index keys start with prefix (ord(id) in schema 2, h in schema 3) in the
// index.
func lastRevision2(index *bbolt.Bucket, prefix []byte) (rev uint64, exists bool, err error) {
	// prefix ‖ 0xff sorts after every key of the stream (an ord starts with
	// 0…8) and before those of the next id.
	var seek [hashLen + 1]byte
	c := index.Cursor()
	k, _ := c.Seek(append(append(seek[:0], prefix...), 0xff))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return 0, false, nil
	}
	rev, n, ok := parseOrd(k[len(prefix):])
	if !ok || len(prefix)+n != len(k) {
		return 0, false, fmt.Errorf("%w: index key %x", errCorrupt, k)
	}
	return rev, true, nil
}

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
func inStream(schema int, k, prefix []byte) bool {
	if schema == schema1 {
		return len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix)
	}
	return bytes.HasPrefix(k, prefix)
}

// indexPosition reads the position an index value holds.
func indexPosition(schema int, v []byte) (uint64, bool) {
	if schema == schema1 {
		if len(v) != 8 {
			return 0, false
		}
		return binary.BigEndian.Uint64(v), true
	}
	pos, n := binary.Uvarint(v)
	return pos, n == len(v) && n > 0
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
	if k == nil || !inStream(schema1, k, prefix) {
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
