package feed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/receiptd/receiptd/aggregate"
)

// The kinds of feed events: a contract, like the log's event types. Never
// renamed; a changed meaning is a new version.
const (
	// KindReceiptProgressed: a stage of a receipt was reported for the
	// first time (Event.Stage). Once per receipt and stage.
	KindReceiptProgressed = "receipt.progressed.v1"
	// KindReceiptCompleted: the receipt became COMPLETED. Once per receipt.
	KindReceiptCompleted = "receipt.completed.v1"
	// KindReceiptFailed: the receipt became FAILED. At most once per
	// receipt; a later AWARDED still completes it (receipt.completed.v1
	// follows, with a conflicting_terminal_events anomaly).
	KindReceiptFailed = "receipt.failed.v1"
	// KindBalanceChanged: a user's balance view changed (points, counts,
	// totals, the reported snapshot, anomalies; not the enrolled flag
	// alone, which user.enrolled.v1 reports).
	KindBalanceChanged = "balance.changed.v1"
	// KindUserEnrolled: the provider reported the user's enrolment. Once
	// per user.
	KindUserEnrolled = "user.enrolled.v1"
	// KindEntityChanged: an event about an entity of the other providers
	// (an offer, an account, an order…) was applied to its view.
	KindEntityChanged = "entity.changed.v1"
	// KindAnomalyDetected: an anomaly appeared on a receipt (a correction
	// of a stage, conflicting terminal events, disagreeing users, an
	// amount out of bounds; Event.Anomalies) or a credit's amount was out
	// of bounds.
	KindAnomalyDetected = "anomaly.detected.v1"

	// KindCheckpoint is not an event: Subscribe's message that the feed
	// passed a position with nothing for the subscriber.
	KindCheckpoint = "checkpoint"
)

// Kinds lists every event kind, for validation and documentation.
var Kinds = []string{
	KindReceiptProgressed, KindReceiptCompleted, KindReceiptFailed, KindBalanceChanged,
	KindUserEnrolled, KindEntityChanged, KindAnomalyDetected,
}

// KnownKind reports whether k is one of Kinds.
func KnownKind(k string) bool { return slices.Contains(Kinds, k) }

// What an event's View is.
const (
	ViewReceipt = "receipt" // aggregate.ReceiptView
	ViewBalance = "balance" // the read models' balance view (projections.Balance)
	ViewEntity  = "entity"  // the read models' entity view, without its timeline (projections.Entity)
)

// Event is one feed event.
type Event struct {
	// Position is the event's feed position (see Pos); it is the key the
	// read models store the event under, not part of the stored value.
	Position uint64 `json:"-"`
	// ID is derived from what the event is about (EventID).
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Source is the configured source the subject belongs to; for a
	// balance, its user id namespace.
	Source string `json:"source"`
	// UserIDs are the users the event is about (of Source): what a user's
	// subscription is filtered by. Empty if none (an entity no user owns).
	UserIDs []string `json:"user_ids,omitempty"`
	// The subject: a receipt, a user, or an entity (kind and id).
	ReceiptID  string `json:"receipt_id,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	EntityKind string `json:"entity_kind,omitempty"`
	EntityID   string `json:"entity_id,omitempty"`
	// Stage is the stage a receipt.progressed.v1 reports.
	Stage aggregate.Stage `json:"stage,omitempty"`
	// Anomalies are the anomalies an anomaly.detected.v1 reports.
	Anomalies []aggregate.Anomaly `json:"anomalies,omitempty"`
	// OccurredAt is the provider's time of the fact, where it sent one.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	// RecordedAt is when receiptd's log recorded the event that caused it.
	RecordedAt time.Time `json:"recorded_at"`
	// ViewOf says what View holds (ViewReceipt, ViewBalance, ViewEntity).
	ViewOf string `json:"view_of"`
	// View is the subject's resolved view after the log event, as the
	// read models encode it (JSON).
	View json.RawMessage `json:"view"`
}

// LogPosition is the commit position of the log event that caused e.
func (e Event) LogPosition() uint64 { return LogPosition(e.Position) }

// IndexBits is how many low bits of a feed position count the events one
// log event caused: at most MaxPerLogEvent.
const IndexBits = 4

// MaxPerLogEvent is the most feed events one log event may cause. A
// receipt's stage causes at most eight (progressed, a terminal event,
// four anomaly kinds, the balances of the receipt's old and new user); a
// credit two; an entity's event one; an enrolment two.
const MaxPerLogEvent = 1 << IndexBits

// MaxLogPosition is the greatest log commit position a feed position can
// hold.
const MaxLogPosition = 1<<(64-IndexBits) - 1

// Pos is the feed position of the index-th event caused by the log event
// at commit position logCommit.
func Pos(logCommit uint64, index int) uint64 { return logCommit<<IndexBits | uint64(index) }

// LogPosition is the log commit position a feed position belongs to.
func LogPosition(feedPos uint64) uint64 { return feedPos >> IndexBits }

// HeadAt is the greatest feed position of the events caused by log events
// up to and including commit position logCommit: the feed's head when the
// read models' checkpoint is there.
func HeadAt(logCommit uint64) uint64 { return logCommit<<IndexBits | (MaxPerLogEvent - 1) }

// EventID is the id of a feed event of kind about the subject named by
// source and parts: a function of them only, so a rebuild, a replay or a
// re-delivery gives the same id. "evt_" and 32 hex digits.
func EventID(kind, source string, parts ...string) string {
	// Each part length-prefixed: no two lists hash alike.
	var buf [160]byte
	b := appendString(appendString(buf[:0], kind), source)
	for _, p := range parts {
		b = appendString(b, p)
	}
	sum := sha256.Sum256(b)
	var out [4 + 32]byte
	copy(out[:], "evt_")
	hex.Encode(out[4:], sum[:16])
	return string(out[:])
}

// The first byte of a stored event (Marshal) is its format, so that a
// later version can read an earlier one:
//
//   - formatPlain (1): the fields one after another, then View as it is
//     (appendPlain). It is also the event's canonical form: what the read
//     models' digests and audits hash and compare (Canonical), so they do
//     not depend on the stored form.
//   - formatS2 (2): formatPlain's bytes after its first, as one S2 block
//     (github.com/klauspost/compress/s2) against the dictionary viewDict.
//     A stored event is mostly its view's JSON, whose field names, enum
//     values and time layouts the dictionary holds: 3–4× smaller.
const (
	formatPlain = 1
	formatS2    = 2
)

// maxPlainSize bounds the plain form of a stored event that Unmarshal and
// Canonical decompress: a corrupt block cannot make them allocate more.
const maxPlainSize = 64 << 20

// Marshal encodes an event for storage (without its Position, which is
// its key), in the compressed form (formatS2): deterministic (the same
// event, the same bytes; times in UTC), with View as it is inside.
func Marshal(e Event) ([]byte, error) {
	return AppendMarshal(make([]byte, 0, MarshalSize(&e)), &e), nil
}

// MarshalSize is at least the length of e's encoding (Marshal).
func MarshalSize(e *Event) int {
	return 1 + s2.MaxEncodedLen(plainSize(e))
}

// plainSize is at least the length of e's plain form (appendPlain).
func plainSize(e *Event) int {
	n := 160 + len(e.ID) + len(e.Kind) + len(e.Source) + len(e.ReceiptID) + len(e.UserID) + len(e.EntityKind) + len(e.EntityID) + len(e.Stage) + len(e.ViewOf) + len(e.View)
	for _, u := range e.UserIDs {
		n += binary.MaxVarintLen64 + len(u)
	}
	for _, a := range e.Anomalies {
		n += 2*binary.MaxVarintLen64 + len(a.Kind) + len(a.Detail)
	}
	return n
}

// plainPool holds the buffers AppendMarshal encodes the plain form in
// before it compresses it, and Unmarshal decompresses into.
var plainPool = sync.Pool{New: func() any { return new([]byte) }}

// AppendMarshal appends e's encoding (Marshal) to b. With room for
// MarshalSize(e) bytes after len(b), it appends in place.
func AppendMarshal(b []byte, e *Event) []byte {
	buf := plainPool.Get().(*[]byte)
	plain := appendPlain((*buf)[:0], e)
	n := s2.MaxEncodedLen(len(plain) - 1)
	b = slices.Grow(b, 1+n)
	at := len(b)
	b = append(b, formatS2)
	out := viewDict().Encode(b[at+1:at+1+n], plain[1:])
	*buf = plain
	plainPool.Put(buf)
	return b[:at+1+len(out)]
}

// appendPlain appends e's plain form (formatPlain) to b.
func appendPlain(b []byte, e *Event) []byte {
	b = append(b, formatPlain)
	b = appendString(b, e.ID)
	b = appendString(b, e.Kind)
	b = appendString(b, e.Source)
	b = appendString(b, e.ReceiptID)
	b = appendString(b, e.UserID)
	b = appendString(b, e.EntityKind)
	b = appendString(b, e.EntityID)
	b = appendString(b, string(e.Stage))
	b = appendString(b, e.ViewOf)
	b = binary.AppendUvarint(b, uint64(len(e.UserIDs)))
	for _, u := range e.UserIDs {
		b = appendString(b, u)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Anomalies)))
	for _, a := range e.Anomalies {
		b = appendString(appendString(b, a.Kind), a.Detail)
	}
	if e.OccurredAt != nil {
		b = appendTime(append(b, 1), *e.OccurredAt)
	} else {
		b = append(b, 0)
	}
	b = appendTime(b, e.RecordedAt)
	b = binary.AppendUvarint(b, uint64(len(e.View)))
	return append(b, e.View...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// Canonical appends the canonical form (formatPlain) of the stored event
// b to dst. It checks only the compression, not the fields (Unmarshal
// does).
func Canonical(dst, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrBadEvent
	}
	switch b[0] {
	case formatPlain:
		return append(dst, b...), nil
	case formatS2:
		n, err := s2.DecodedLen(b[1:])
		if err != nil || n > maxPlainSize {
			return nil, ErrBadEvent
		}
		dst = slices.Grow(dst, 1+n)
		at := len(dst)
		dst = append(dst, formatPlain)
		out, err := viewDict().Decode(dst[at+1:at+1+n], b[1:])
		if err != nil || len(out) != n {
			return nil, ErrBadEvent
		}
		return dst[:at+1+n], nil
	}
	return nil, fmt.Errorf("format %d: %w", b[0], ErrBadEvent)
}

// Unmarshal decodes a stored event, in either format; pos is its key.
func Unmarshal(pos uint64, b []byte) (Event, error) {
	buf := plainPool.Get().(*[]byte)
	defer plainPool.Put(buf)
	plain := b
	if len(b) == 0 || b[0] != formatPlain {
		var err error
		if plain, err = Canonical((*buf)[:0], b); err != nil {
			return Event{}, fmt.Errorf("feed: event at %d: %w", pos, err)
		}
		if cap(plain) <= 1<<20 {
			*buf = plain // keep the grown buffer
		}
	}
	d := decoder{b: plain[1:]}
	e := Event{Position: pos}
	var stage string
	for _, s := range []*string{&e.ID, &e.Kind, &e.Source, &e.ReceiptID, &e.UserID, &e.EntityKind, &e.EntityID, &stage, &e.ViewOf} {
		*s = d.string()
	}
	e.Stage = aggregate.Stage(stage)
	if n := d.count(); n > 0 {
		e.UserIDs = make([]string, n)
		for i := range e.UserIDs {
			e.UserIDs[i] = d.string()
		}
	}
	if n := d.count(); n > 0 {
		e.Anomalies = make([]aggregate.Anomaly, n)
		for i := range e.Anomalies {
			e.Anomalies[i] = aggregate.Anomaly{Kind: d.string(), Detail: d.string()}
		}
	}
	if d.byte() == 1 {
		t := d.time()
		e.OccurredAt = &t
	}
	e.RecordedAt = d.time()
	if v := d.string(); v != "" {
		e.View = json.RawMessage(v)
	}
	if d.err != nil || len(d.b) != 0 {
		return Event{}, fmt.Errorf("feed: event at %d: %w", pos, ErrBadEvent)
	}
	return e, nil
}

// decoder reads Marshal's encoding; a short or bad input sets err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = ErrBadEvent, nil }

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every element takes a byte at least
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return time.Time{}
	}
	d.b = d.b[n:]
	ns := d.uvarint()
	if ns >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// Errors of the feed; match with errors.Is.
var (
	// ErrBadEvent: a stored feed event that cannot be decoded.
	ErrBadEvent = errors.New("feed: bad stored event")
	// ErrUnknownDestination: no destination of that name is configured.
	ErrUnknownDestination = errors.New("feed: unknown destination")
	// ErrClosed: the destinations' progress file is closed.
	ErrClosed = errors.New("feed: closed")
)
