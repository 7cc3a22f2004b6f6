package eventcodec

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/encoding/protowire"
)

// The decoders of the hot v2 messages (StageRecorded, UserEnrolled,
// Metadata: what a rebuild and the decide path read for nearly every
// event) read the protobuf wire format directly into the aggregate
// structs, without the generated messages in between, and make all the
// strings of a message from one allocation. Same run, over the golden
// events (BenchmarkDecodeWire): StageRecorded 19 allocations and 948 B to 8
// and 370 B, Metadata 13 allocations and 683 B to 1 and 165 B. They follow
// the protobuf rules the generated code follows, and
// TestWireMatchesGenerated and FuzzWireMatchesGenerated check them against
// it: fields in any order, the last value of a repeated scalar wins, a
// repeated message field merges, unknown fields and fields of an
// unexpected wire type are skipped, strings must be UTF-8. The other
// messages decode through the generated code, and every message encodes
// through it.

var errWire = errors.New("malformed protobuf")

// wire reads the fields of one message.
type wire struct {
	b   []byte
	err error
}

// next returns the next field's number and type, or false at the end or
// on an error (in w.err).
func (w *wire) next() (protowire.Number, protowire.Type, bool) {
	if len(w.b) == 0 || w.err != nil {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(w.b)
	if n < 0 || num < protowire.MinValidNumber || num > protowire.MaxValidNumber || typ == protowire.EndGroupType {
		w.err = errWire
		return 0, 0, false
	}
	w.b = w.b[n:]
	return num, typ, true
}

// skip skips the value of a field the caller does not read.
func (w *wire) skip(num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, w.b)
	if n < 0 {
		w.err = errWire
		return
	}
	w.b = w.b[n:]
}

func (w *wire) varint() uint64 {
	v, n := protowire.ConsumeVarint(w.b)
	if n < 0 {
		w.err = errWire
		return 0
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) bytes() []byte {
	v, n := protowire.ConsumeBytes(w.b)
	if n < 0 {
		w.err = errWire
		return nil
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) string() string {
	v := w.bytes()
	if !utf8.Valid(v) {
		if w.err == nil {
			w.err = errors.New("string field holds invalid UTF-8")
		}
		return ""
	}
	return string(v)
}

// spanSet gathers a message's string fields as views of the input and
// makes them strings at the end, all sharing one allocation: a decoded
// event has half a dozen short strings, and one allocation instead of six
// is a good part of what decoding costs. A field's slot is an int the
// decoder keeps (-1 until the field is seen): the last value of a repeated
// field replaces the earlier one in its slot.
type spanSet struct {
	n   int
	src [maxSpans][]byte
	off [maxSpans]int
	all string
	err error
	// chainStart and chainEnd delimit build's first, ":", last.
	chainStart, chainEnd int
}

// maxSpans bounds the string fields of one message.
const maxSpans = 16

// add sets slot *slot to b.
func (s *spanSet) add(slot *int, b []byte) {
	if !utf8.Valid(b) {
		if s.err == nil {
			s.err = errors.New("string field holds invalid UTF-8")
		}
		return
	}
	if *slot < 0 {
		if s.n == maxSpans {
			s.err = errors.New("too many string fields")
			return
		}
		*slot = s.n
		s.n++
	}
	s.src[*slot] = b
}

// build makes the strings. The slots first and last, with a ":" between
// them when sep, come after every other slot and are followed by hash's
// hex (when hash is not nil), so that they make one substring with it
// (see chain): the metadata's dedupe key, whose event type prefix and hash
// suffix were left out.
func (s *spanSet) build(hash []byte, first, last int, sep bool) error {
	if s.err != nil {
		return s.err
	}
	total := 2 * len(hash)
	if sep {
		total++
	}
	for i := 0; i < s.n; i++ {
		total += len(s.src[i])
	}
	if total == 0 {
		return nil
	}
	var b strings.Builder
	b.Grow(total)
	for i := 0; i < s.n; i++ {
		if i != first && i != last {
			s.off[i] = b.Len()
			b.Write(s.src[i])
		}
	}
	s.chainStart = b.Len()
	if first >= 0 {
		s.off[first] = b.Len()
		b.Write(s.src[first])
	}
	if sep {
		b.WriteByte(':')
	}
	if last >= 0 {
		s.off[last] = b.Len()
		b.Write(s.src[last])
	}
	s.chainEnd = b.Len()
	if len(hash) > 0 {
		var h [2 * hashLen]byte
		if len(hash) <= hashLen {
			hex.Encode(h[:], hash)
			b.Write(h[:2*len(hash)])
		} else {
			b.WriteString(hex.EncodeToString(hash))
		}
	}
	s.all = b.String()
	return nil
}

// chain returns first, ":", last as build wrote them, with the hash's hex
// when withHash.
func (s *spanSet) chain(withHash bool) string {
	if withHash {
		return s.all[s.chainStart:]
	}
	return s.all[s.chainStart:s.chainEnd]
}

// get returns the string of a slot ("" for -1).
func (s *spanSet) get(slot int) string {
	if slot < 0 {
		return ""
	}
	return s.all[s.off[slot] : s.off[slot]+len(s.src[slot])]
}

// hash returns the hex of build's hash of n bytes.
func (s *spanSet) hash(n int) string { return s.all[len(s.all)-2*n:] }

// sstr reads a string field into a slot of the set.
func (w *wire) sstr(typ protowire.Type, num protowire.Number, set *spanSet, slot *int) {
	if typ != protowire.BytesType {
		w.skip(num, typ)
		return
	}
	b := w.bytes()
	if w.err == nil {
		set.add(slot, b)
	}
}

// Field readers: each reads the field if its wire type is the expected
// one and skips it otherwise, as the generated code does.

func (w *wire) str(typ protowire.Type, num protowire.Number, dst *string) {
	if typ != protowire.BytesType {
		w.skip(num, typ)
		return
	}
	*dst = w.string()
}

func (w *wire) raw(typ protowire.Type, num protowire.Number, dst *[]byte) {
	if typ != protowire.BytesType {
		w.skip(num, typ)
		return
	}
	*dst = w.bytes()
}

func (w *wire) uvarint(typ protowire.Type, num protowire.Number, dst *uint64) {
	if typ != protowire.VarintType {
		w.skip(num, typ)
		return
	}
	*dst = w.varint()
}

// msg returns the bytes of a message field, or false when the field has
// another wire type (skipped) or on an error.
func (w *wire) msg(typ protowire.Type, num protowire.Number) (wire, bool) {
	if typ != protowire.BytesType {
		w.skip(num, typ)
		return wire{}, false
	}
	b := w.bytes()
	return wire{b: b}, w.err == nil
}

// sub records the error of a sub-message's reader.
func (w *wire) sub(sub *wire) {
	if sub.err != nil && w.err == nil {
		w.err = sub.err
	}
}

// wireDecimal and wireTime gather a Decimal or Time message: present once
// the message appeared at all.
type wireDecimal struct {
	present  bool
	unscaled uint64
	exponent uint64
	text     string
}

func (d *wireDecimal) merge(w *wire) {
	d.present = true
	for {
		num, typ, ok := w.next()
		if !ok {
			return
		}
		switch num {
		case 1:
			w.uvarint(typ, num, &d.unscaled)
		case 2:
			w.uvarint(typ, num, &d.exponent)
		case 3:
			w.str(typ, num, &d.text)
		default:
			w.skip(num, typ)
		}
	}
}

func (d *wireDecimal) value() (decimal.Decimal, error) {
	if !d.present {
		return decimal.Decimal{}, nil
	}
	if d.text != "" {
		return decimalText(d.text)
	}
	return decimal.New(protowire.DecodeZigZag(d.unscaled), int32(protowire.DecodeZigZag(d.exponent&math.MaxUint32))), nil
}

func (d *wireDecimal) ptr() (*decimal.Decimal, error) {
	if !d.present {
		return nil, nil
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// decimalText parses Decimal.text: coefficient "e" exponent.
func decimalText(t string) (decimal.Decimal, error) {
	mant, exp, ok := strings.Cut(t, "e")
	c, okc := new(big.Int).SetString(mant, 10)
	e, err := strconv.ParseInt(exp, 10, 32)
	if !ok || !okc || err != nil {
		return decimal.Decimal{}, fmt.Errorf("malformed decimal text %q", t)
	}
	return decimal.NewFromBigInt(c, int32(e)), nil
}

type wireTime struct {
	present bool
	seconds uint64
	nanos   uint64
	offset  uint64
}

func (t *wireTime) merge(w *wire) {
	t.present = true
	for {
		num, typ, ok := w.next()
		if !ok {
			return
		}
		switch num {
		case 1:
			w.uvarint(typ, num, &t.seconds)
		case 2:
			w.uvarint(typ, num, &t.nanos)
		case 3:
			w.uvarint(typ, num, &t.offset)
		default:
			w.skip(num, typ)
		}
	}
}

func (t *wireTime) ptr() *timeValue {
	if !t.present {
		return nil
	}
	return &timeValue{
		seconds: protowire.DecodeZigZag(t.seconds),
		nanos:   int32(t.nanos),
		offset:  int32(protowire.DecodeZigZag(t.offset & math.MaxUint32)),
	}
}

// decodeStageRecordedWire decodes a StageRecorded message into f.
func decodeStageRecordedWire(b, metadata []byte, f *aggregate.StageRecorded) error {
	w := wire{b: b}
	var (
		ss                                         spanSet
		source, receipt, user, stageName, hashText = -1, -1, -1, -1, -1
		merchant, currency                         = -1, -1
		stage                                      uint64
		occurred                                   wireTime
		hashRaw                                    []byte
		inMetadata                                 uint64
		amount                                     wireDecimal
		award                                      wireAward
		failure                                    wireFailure
	)
	for {
		num, typ, ok := w.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			w.sstr(typ, num, &ss, &source)
		case 2:
			w.sstr(typ, num, &ss, &receipt)
		case 3:
			w.sstr(typ, num, &ss, &user)
		case 4:
			w.uvarint(typ, num, &stage)
		case 5:
			w.sstr(typ, num, &ss, &stageName)
		case 6:
			if sub, ok := w.msg(typ, num); ok {
				occurred.merge(&sub)
				w.sub(&sub)
			}
		case 7:
			w.raw(typ, num, &hashRaw)
		case 8:
			w.sstr(typ, num, &ss, &hashText)
		case 9:
			w.sstr(typ, num, &ss, &merchant)
		case 10:
			w.sstr(typ, num, &ss, &currency)
		case 11:
			if sub, ok := w.msg(typ, num); ok {
				amount.merge(&sub)
				w.sub(&sub)
			}
		case 12:
			if sub, ok := w.msg(typ, num); ok {
				award.merge(&sub, &ss)
				w.sub(&sub)
			}
		case 13:
			if sub, ok := w.msg(typ, num); ok {
				failure.merge(&sub, &ss)
				w.sub(&sub)
			}
		case 14:
			w.uvarint(typ, num, &inMetadata)
		default:
			w.skip(num, typ)
		}
	}
	if w.err != nil {
		return w.err
	}
	if inMetadata != 0 {
		if hashRaw, hashText, w.err = metadataHashInto(metadata, &ss); w.err != nil {
			return w.err
		}
	}
	if len(hashRaw) == 0 {
		hashRaw = nil
	}
	if err := ss.build(hashRaw, -1, -1, false); err != nil {
		return err
	}
	f.Source, f.ReceiptID, f.UserID = ss.get(source), ss.get(receipt), ss.get(user)
	f.Merchant, f.Currency = ss.get(merchant), ss.get(currency)
	f.Stage = stageOf(int32(stage), ss.get(stageName))
	if hashRaw != nil {
		f.BodySHA256 = ss.hash(len(hashRaw))
	} else {
		f.BodySHA256 = ss.get(hashText)
	}
	f.OccurredAt = occurred.ptr().time()
	var err error
	if f.Amount, err = amount.ptr(); err != nil {
		return err
	}
	if f.Award, err = award.value(&ss); err != nil {
		return err
	}
	f.Failure = failure.value(&ss)
	return nil
}

// wireAward gathers an Award message.
type wireAward struct {
	present                     bool
	txID                        int
	points, bonus, health, co2e wireDecimal
	green                       uint64
	snapshot                    bool
	avail, lifetime             wireDecimal
	snapN                       uint64
}

func (a *wireAward) merge(w *wire, ss *spanSet) {
	if !a.present {
		a.present, a.txID = true, -1
	}
	for {
		num, typ, ok := w.next()
		if !ok {
			return
		}
		switch num {
		case 1:
			w.sstr(typ, num, ss, &a.txID)
		case 2, 3, 4, 5:
			d := [...]*wireDecimal{&a.points, &a.bonus, &a.health, &a.co2e}[num-2]
			if sub, ok := w.msg(typ, num); ok {
				d.merge(&sub)
				w.sub(&sub)
			}
		case 6:
			w.uvarint(typ, num, &a.green)
		case 7:
			if sub, ok := w.msg(typ, num); ok {
				a.mergeSnapshot(&sub)
				w.sub(&sub)
			}
		default:
			w.skip(num, typ)
		}
	}
}

func (a *wireAward) mergeSnapshot(w *wire) {
	a.snapshot = true
	for {
		num, typ, ok := w.next()
		if !ok {
			return
		}
		switch num {
		case 1, 2:
			d := &a.avail
			if num == 2 {
				d = &a.lifetime
			}
			if sub, ok := w.msg(typ, num); ok {
				d.merge(&sub)
				w.sub(&sub)
			}
		case 3:
			w.uvarint(typ, num, &a.snapN)
		default:
			w.skip(num, typ)
		}
	}
}

func (a *wireAward) value(ss *spanSet) (*aggregate.Award, error) {
	if !a.present {
		return nil, nil
	}
	out := &aggregate.Award{TransactionID: ss.get(a.txID), GreenProducts: int64(a.green)}
	var err error
	for _, d := range [...]struct {
		dst *decimal.Decimal
		src *wireDecimal
	}{{&out.Points, &a.points}, {&out.BonusPoints, &a.bonus}, {&out.HealthPoints, &a.health}, {&out.CO2e, &a.co2e}} {
		if *d.dst, err = d.src.value(); err != nil {
			return nil, err
		}
	}
	if a.snapshot {
		s := &aggregate.Snapshot{NumTransactions: int64(a.snapN)}
		if s.AvailablePoints, err = a.avail.value(); err != nil {
			return nil, err
		}
		if s.LifetimePoints, err = a.lifetime.value(); err != nil {
			return nil, err
		}
		out.Snapshot = s
	}
	return out, nil
}

// wireFailure gathers a Failure message.
type wireFailure struct {
	present       bool
	code          uint64
	name, message int
}

func (f *wireFailure) merge(w *wire, ss *spanSet) {
	if !f.present {
		f.present, f.name, f.message = true, -1, -1
	}
	for {
		num, typ, ok := w.next()
		if !ok {
			return
		}
		switch num {
		case 1:
			w.uvarint(typ, num, &f.code)
		case 2:
			w.sstr(typ, num, ss, &f.name)
		case 3:
			w.sstr(typ, num, ss, &f.message)
		default:
			w.skip(num, typ)
		}
	}
}

func (f *wireFailure) value(ss *spanSet) *aggregate.Failure {
	if !f.present {
		return nil
	}
	return &aggregate.Failure{Code: int64(f.code), Name: ss.get(f.name), Message: ss.get(f.message)}
}

// decodeMetadataWire decodes a Metadata message of the event id.
func decodeMetadataWire(b []byte, id string, md *aggregate.Metadata) error {
	w := wire{b: b}
	var (
		ss                                                spanSet
		source, petype, delivery, scheme, keyID, hashText = -1, -1, -1, -1, -1, -1
		dedupe, slot, corr, caus                          = -1, -1, -1, -1
		received                                          wireTime
		hashRaw                                           []byte
		prefix                                            uint64
		suffix, correction                                uint64
	)
	for {
		num, typ, ok := w.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			w.sstr(typ, num, &ss, &source)
		case 2:
			w.sstr(typ, num, &ss, &petype)
		case 3:
			w.sstr(typ, num, &ss, &delivery)
		case 4:
			if sub, ok := w.msg(typ, num); ok {
				received.merge(&sub)
				w.sub(&sub)
			}
		case 5:
			w.sstr(typ, num, &ss, &scheme)
		case 6:
			w.sstr(typ, num, &ss, &keyID)
		case 7:
			w.raw(typ, num, &hashRaw)
		case 8:
			w.sstr(typ, num, &ss, &hashText)
		case 9:
			w.sstr(typ, num, &ss, &dedupe)
		case 10:
			w.uvarint(typ, num, &suffix)
		case 11:
			w.sstr(typ, num, &ss, &slot)
		case 12:
			w.uvarint(typ, num, &correction)
		case 13:
			w.sstr(typ, num, &ss, &corr)
		case 14:
			w.sstr(typ, num, &ss, &caus)
		case 15:
			w.uvarint(typ, num, &prefix)
		default:
			w.skip(num, typ)
		}
	}
	if w.err != nil {
		return w.err
	}
	if len(hashRaw) == 0 {
		hashRaw = nil
	}
	// The dedupe key is the event type and ":" (with the prefix flag), its
	// stored part and the hash's hex (with the suffix flag): built so, it
	// is one substring.
	withSuffix := suffix != 0 && len(hashRaw) == hashLen
	first := -1
	if prefix != 0 {
		first = petype
	}
	if err := ss.build(hashRaw, first, dedupe, prefix != 0); err != nil {
		return err
	}
	md.Source, md.ProviderEventType, md.DeliveryID = ss.get(source), ss.get(petype), ss.get(delivery)
	md.Scheme, md.KeyID, md.SlotKey = ss.get(scheme), ss.get(keyID), ss.get(slot)
	if hashRaw != nil {
		md.BodySHA256 = ss.hash(len(hashRaw))
	} else {
		md.BodySHA256 = ss.get(hashText)
	}
	md.DedupeKey = ss.chain(withSuffix)
	if received.present {
		md.ReceivedAt = received.ptr().value()
	}
	md.Correction = correction != 0
	md.CorrelationID, md.CausationID = id, id
	if corr >= 0 {
		md.CorrelationID = ss.get(corr)
	}
	if caus >= 0 {
		md.CausationID = ss.get(caus)
	}
	return nil
}

// metadataHashInto reads the body hash of a Metadata message: raw bytes,
// or else text (into a slot of ss). It checks the rest of the message as
// decoding it would (strings UTF-8, the time a well-formed message), so
// that a payload whose hash is in a malformed metadata fails as the
// metadata does.
func metadataHashInto(metadata []byte, ss *spanSet) (raw []byte, textSlot int, err error) {
	w := wire{b: metadata}
	textSlot = -1
	for {
		num, typ, ok := w.next()
		if !ok {
			break
		}
		switch num {
		case 7:
			w.raw(typ, num, &raw)
		case 8:
			w.sstr(typ, num, ss, &textSlot)
		case 1, 2, 3, 5, 6, 9, 11, 13, 14:
			if typ != protowire.BytesType {
				w.skip(num, typ)
			} else if b := w.bytes(); w.err == nil && !utf8.Valid(b) {
				w.err = errors.New("string field holds invalid UTF-8")
			}
		case 4:
			if sub, ok := w.msg(typ, num); ok {
				var t wireTime
				t.merge(&sub)
				w.sub(&sub)
			}
		default:
			w.skip(num, typ)
		}
	}
	if w.err == nil {
		w.err = ss.err
	}
	return raw, textSlot, w.err
}

// metadataHash reads the body hash of a Metadata message.
func metadataHash(metadata []byte) (raw []byte, text string, err error) {
	var ss spanSet
	raw, slot, err := metadataHashInto(metadata, &ss)
	if err == nil {
		err = ss.build(nil, -1, -1, false)
	}
	if err != nil {
		return nil, "", err
	}
	return raw, ss.get(slot), nil
}

// decodeUserEnrolledWire decodes a UserEnrolled message into f.
func decodeUserEnrolledWire(b, metadata []byte, f *aggregate.UserEnrolled) error {
	w := wire{b: b}
	var (
		ss                            spanSet
		source, user, email, hashText = -1, -1, -1, -1
		enrolled                      wireTime
		hashRaw, sealed               []byte
		inMetadata                    uint64
	)
	for {
		num, typ, ok := w.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			w.sstr(typ, num, &ss, &source)
		case 2:
			w.sstr(typ, num, &ss, &user)
		case 3:
			w.sstr(typ, num, &ss, &email)
		case 8:
			w.raw(typ, num, &sealed)
		case 4:
			if sub, ok := w.msg(typ, num); ok {
				enrolled.merge(&sub)
				w.sub(&sub)
			}
		case 5:
			w.raw(typ, num, &hashRaw)
		case 6:
			w.sstr(typ, num, &ss, &hashText)
		case 7:
			w.uvarint(typ, num, &inMetadata)
		default:
			w.skip(num, typ)
		}
	}
	if w.err != nil {
		return w.err
	}
	if inMetadata != 0 {
		if hashRaw, hashText, w.err = metadataHashInto(metadata, &ss); w.err != nil {
			return w.err
		}
	}
	if len(hashRaw) == 0 {
		hashRaw = nil
	}
	if err := ss.build(hashRaw, -1, -1, false); err != nil {
		return err
	}
	f.Source, f.UserID, f.Email = ss.get(source), ss.get(user), ss.get(email)
	if hashRaw != nil {
		f.BodySHA256 = ss.hash(len(hashRaw))
	} else {
		f.BodySHA256 = ss.get(hashText)
	}
	f.EnrolledAt = enrolled.ptr().time()
	if len(sealed) > 0 {
		f.Sealed = append([]byte(nil), sealed...)
	}
	return nil
}
