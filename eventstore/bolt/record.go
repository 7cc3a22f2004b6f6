package bolt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// A record is one event as the events bucket holds it (the key is its
// position). Version 2, written since events carry a Body:
//
//	[0]     recordVersion (2)
//	[1:9]   revision, big-endian
//	[9:17]  recorded-at, Unix nanoseconds, big-endian
//	[17]    flags (flagUUID, flagTypeCode, flagBody)
//	        uvarint length ‖ stream
//	        type: one byte, an index into typeCodes, with flagTypeCode;
//	              else uvarint length ‖ type
//	        id: 16 bytes, a UUID in canonical form, with flagUUID;
//	            else uvarint length ‖ id
//	        uvarint length ‖ metadata
//	        uvarint length ‖ data
//	        body, to the end (with flagBody; without it the event has no
//	        Body and the record ends after data)
//
// Version 1, written before, is read still:
//
//	[0]     1
//	[1:17]  revision and recorded-at, as above
//	        uvarint length ‖ stream, ‖ type, ‖ id, ‖ metadata
//	        data, to the end
//
// The fixed-size header lets Append encode the whole record in the caller's
// goroutine, before the revision and time are known; the committer only
// patches the 16 header bytes. Encoding work so stays off the single
// committer goroutine, and the committer never reads the caller's slices.
const (
	recordV1      = 1
	recordVersion = 2
	recordHeader  = 17
)

// Flags of a version 2 record.
const (
	flagUUID     = 1 << 0
	flagTypeCode = 1 << 1
	flagBody     = 1 << 2
	knownFlags   = flagUUID | flagTypeCode | flagBody
)

// typeCodes are the event types a record names with one byte: its index in
// this list. The list is part of the file format: names are only ever
// appended, never removed or reordered (a type not listed is stored as
// text).
var typeCodes = [...]string{
	0:  "", // never used: code 0 is reserved
	1:  aggregate.TypeReceiptStageRecorded,
	2:  aggregate.TypeUserEnrolled,
	3:  aggregate.TypeDeliveryQuarantined,
	4:  aggregate.TypeUserPointsCredited,
	5:  aggregate.TypeEntityEventRecorded,
	6:  aggregate.TypeSignatureClaimed,
	7:  aggregate.TypeReceiptStageRecordedV2,
	8:  aggregate.TypeUserEnrolledV2,
	9:  aggregate.TypeDeliveryQuarantinedV2,
	10: aggregate.TypeUserPointsCreditedV2,
	11: aggregate.TypeEntityEventRecordedV2,
}

// typeCode returns the code of an event type, or 0.
func typeCode(t string) byte {
	for i := 1; i < len(typeCodes); i++ {
		if typeCodes[i] == t {
			return byte(i)
		}
	}
	return 0
}

// errCorrupt marks a file that does not hold what this package wrote.
var errCorrupt = errors.New("corrupt store")

// parseUUID returns the 16 bytes of id when id is a UUID in canonical form
// (lowercase, hyphenated), the form that formatUUID gives back.
func parseUUID(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(id[i])
		lo, ok2 := unhex(id[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func formatUUID(u []byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

func recordLen(stream string, e aggregate.Event) int {
	n := recordHeader + 1 + uvarintLen(uint64(len(stream))) + len(stream)
	if typeCode(e.Type) != 0 {
		n++
	} else {
		n += uvarintLen(uint64(len(e.Type))) + len(e.Type)
	}
	if _, ok := parseUUID(e.ID); ok {
		n += 16
	} else {
		n += uvarintLen(uint64(len(e.ID))) + len(e.ID)
	}
	return n + uvarintLen(uint64(len(e.Metadata))) + len(e.Metadata) +
		uvarintLen(uint64(len(e.Data))) + len(e.Data) + len(e.Body)
}

// appendRecord appends e's record, with a zero revision and time, to dst.
func appendRecord(dst []byte, stream string, e aggregate.Event) []byte {
	dst = append(dst, recordVersion)
	dst = append(dst, make([]byte, recordHeader-1)...)
	flagAt := len(dst)
	dst = append(dst, 0)
	var flags byte
	dst = appendField(dst, stream)
	if c := typeCode(e.Type); c != 0 {
		flags |= flagTypeCode
		dst = append(dst, c)
	} else {
		dst = appendField(dst, e.Type)
	}
	if u, ok := parseUUID(e.ID); ok {
		flags |= flagUUID
		dst = append(dst, u[:]...)
	} else {
		dst = appendField(dst, e.ID)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Metadata)))
	dst = append(dst, e.Metadata...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	dst = append(dst, e.Data...)
	if e.Body != nil {
		flags |= flagBody
		dst = append(dst, e.Body...)
	}
	dst[flagAt] = flags
	return dst
}

// appendRecordV1 appends e's record in version 1, which has no Body: what
// the store wrote before version 2. It is kept for the tests that read such
// files and the benchmarks that compare the versions (Options.recordV1).
func appendRecordV1(dst []byte, stream string, e aggregate.Event) []byte {
	dst = append(dst, recordV1)
	dst = append(dst, make([]byte, recordHeader-1)...)
	dst = appendField(dst, stream)
	dst = appendField(dst, e.Type)
	dst = appendField(dst, e.ID)
	dst = binary.AppendUvarint(dst, uint64(len(e.Metadata)))
	dst = append(dst, e.Metadata...)
	return append(dst, e.Data...)
}

func recordLenV1(stream string, e aggregate.Event) int {
	return recordHeader +
		uvarintLen(uint64(len(stream))) + len(stream) +
		uvarintLen(uint64(len(e.Type))) + len(e.Type) +
		uvarintLen(uint64(len(e.ID))) + len(e.ID) +
		uvarintLen(uint64(len(e.Metadata))) + len(e.Metadata) +
		len(e.Data)
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

// recordStream reads the stream and revision of the record at pos, without
// decoding the rest. The stream is a slice of rec.
func recordStream(pos uint64, rec []byte) (stream []byte, rev uint64, err error) {
	if len(rec) < recordHeader+1 {
		return nil, 0, fmt.Errorf("%w: event at position %d: short record", errCorrupt, pos)
	}
	rest := rec[recordHeader:]
	switch rec[0] {
	case recordV1:
	case recordVersion:
		rest = rest[1:] // flags
	default:
		return nil, 0, fmt.Errorf("%w: event at position %d: record version %d", errCorrupt, pos, rec[0])
	}
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return nil, 0, fmt.Errorf("%w: event at position %d: truncated stream", errCorrupt, pos)
	}
	return rest[w : w+int(n)], binary.BigEndian.Uint64(rec[1:9]), nil
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
	ev := eventstore.RecordedEvent{
		Revision:   binary.BigEndian.Uint64(rec[1:9]),
		Position:   eventstore.Position{Commit: pos, Prepare: pos},
		RecordedAt: time.Unix(0, int64(binary.BigEndian.Uint64(rec[9:17]))).UTC(),
	}
	rest := rec[recordHeader:]
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, false
		}
		f := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return f, true
	}
	var meta, data, body []byte
	switch rec[0] {
	case recordV1:
		var fields [4][]byte
		for i := range fields {
			var ok bool
			if fields[i], ok = field(); !ok {
				return fail("truncated field")
			}
		}
		ev.Stream, ev.Type, ev.ID = string(fields[0]), string(fields[1]), string(fields[2])
		meta, data = fields[3], rest
	case recordVersion:
		if len(rest) < 1 || rest[0]&^knownFlags != 0 {
			return fail("record flags")
		}
		flags := rest[0]
		rest = rest[1:]
		stream, ok := field()
		if !ok {
			return fail("truncated stream")
		}
		ev.Stream = string(stream)
		if flags&flagTypeCode != 0 {
			if len(rest) < 1 || rest[0] == 0 || int(rest[0]) >= len(typeCodes) {
				return fail("event type code")
			}
			ev.Type, rest = typeCodes[rest[0]], rest[1:]
		} else {
			t, ok := field()
			if !ok {
				return fail("truncated type")
			}
			ev.Type = string(t)
		}
		if flags&flagUUID != 0 {
			if len(rest) < 16 {
				return fail("truncated id")
			}
			ev.ID, rest = formatUUID(rest[:16]), rest[16:]
		} else {
			id, ok := field()
			if !ok {
				return fail("truncated id")
			}
			ev.ID = string(id)
		}
		if meta, ok = field(); !ok {
			return fail("truncated metadata")
		}
		if data, ok = field(); !ok {
			return fail("truncated data")
		}
		if flags&flagBody != 0 {
			body = rest
		} else if len(rest) > 0 {
			return fail("trailing bytes")
		}
	default:
		return fail(fmt.Sprintf("record version %d", rec[0]))
	}
	// Metadata, data and body share one copy; each is capped so that
	// appending to one never writes into another.
	m, d, b := len(meta), len(data), len(body)
	if m+d+b > 0 {
		buf := make([]byte, 0, m+d+b)
		buf = append(append(append(buf, meta...), data...), body...)
		if m > 0 {
			ev.Metadata = buf[:m:m]
		}
		if d > 0 {
			ev.Data = buf[m : m+d : m+d]
		}
		if b > 0 {
			ev.Body = buf[m+d : m+d+b : m+d+b]
		}
	}
	if body != nil && b == 0 {
		ev.Body = []byte{}
	}
	return ev, nil
}
