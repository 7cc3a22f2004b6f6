package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// A record is one event as the events bucket holds it (the key is its
// position):
//
//	[0]     recordVersion
//	[1:9]   revision, big-endian
//	[9:17]  recorded-at, Unix nanoseconds, big-endian
//	        uvarint length ‖ stream
//	        uvarint length ‖ type
//	        uvarint length ‖ id
//	        uvarint length ‖ metadata
//	        data, to the end
//
// The fixed-size header lets Append encode the whole record in the caller's
// goroutine, before the revision and time are known; the committer only
// patches the 16 header bytes. Encoding work so stays off the single
// committer goroutine, and the committer never reads the caller's slices.
const (
	recordVersion = 1
	recordHeader  = 17
)

// errCorrupt marks a file that does not hold what this package wrote.
var errCorrupt = errors.New("corrupt store")

func recordLen(stream string, e aggregate.Event) int {
	return recordHeader +
		uvarintLen(uint64(len(stream))) + len(stream) +
		uvarintLen(uint64(len(e.Type))) + len(e.Type) +
		uvarintLen(uint64(len(e.ID))) + len(e.ID) +
		uvarintLen(uint64(len(e.Metadata))) + len(e.Metadata) +
		len(e.Data)
}

// appendRecord appends e's record, with a zero revision and time, to dst.
func appendRecord(dst []byte, stream string, e aggregate.Event) []byte {
	dst = append(dst, recordVersion)
	dst = append(dst, make([]byte, recordHeader-1)...)
	dst = appendField(dst, stream)
	dst = appendField(dst, e.Type)
	dst = appendField(dst, e.ID)
	dst = binary.AppendUvarint(dst, uint64(len(e.Metadata)))
	dst = append(dst, e.Metadata...)
	return append(dst, e.Data...)
}

func appendField(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// stampRecord sets the revision and time of an encoded record.
func stampRecord(rec []byte, rev uint64, at int64) {
	binary.BigEndian.PutUint64(rec[1:9], rev)
	binary.BigEndian.PutUint64(rec[9:17], uint64(at))
}

// decodeRecord decodes the record at pos. The result shares no memory with
// rec, which bbolt only lends for the life of a transaction.
func decodeRecord(pos uint64, rec []byte) (eventstore.RecordedEvent, error) {
	fail := func(what string) (eventstore.RecordedEvent, error) {
		return eventstore.RecordedEvent{}, fmt.Errorf("%w: event at position %d: %s", errCorrupt, pos, what)
	}
	if len(rec) < recordHeader {
		return fail("short record")
	}
	if rec[0] != recordVersion {
		return fail(fmt.Sprintf("record version %d", rec[0]))
	}
	ev := eventstore.RecordedEvent{
		Revision:   binary.BigEndian.Uint64(rec[1:9]),
		Position:   eventstore.Position{Commit: pos, Prepare: pos},
		RecordedAt: time.Unix(0, int64(binary.BigEndian.Uint64(rec[9:17]))).UTC(),
	}
	rest := rec[recordHeader:]
	var fields [4][]byte
	for i := range fields {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return fail("truncated field")
		}
		fields[i], rest = rest[w:w+int(n)], rest[w+int(n):]
	}
	ev.Stream = string(fields[0])
	ev.Type = string(fields[1])
	ev.ID = string(fields[2])
	// Metadata and data share one copy; each is capped so that appending to
	// one never writes into the other.
	if m, d := len(fields[3]), len(rest); m+d > 0 {
		buf := make([]byte, 0, m+d)
		buf = append(append(buf, fields[3]...), rest...)
		if m > 0 {
			ev.Metadata = buf[:m:m]
		}
		if d > 0 {
			ev.Data = buf[m : m+d : m+d]
		}
	}
	return ev, nil
}
