package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// The read models' records are stored in a compact binary form (schema
// 5): varints, strings with back-references within a record, hex hashes
// as their bytes, decimals as coefficient and exponent, times as seconds,
// nanoseconds and zone offset. Every field round-trips exactly — the
// audit's canonical form (canon.go) is re-derived from it — and every
// encoder is deterministic, so a rebuild writes the same bytes.

// errCorrupt: a stored record that does not decode.
var errCorrupt = errors.New("projections: corrupt record")

// benc appends a record's fields to b.
type benc struct {
	b []byte
	// strs are the strings written so far (back-references).
	strs []string
}

func (w *benc) byte(c byte) { w.b = append(w.b, c) }

func (w *benc) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }

func (w *benc) varint(x int64) { w.b = binary.AppendVarint(w.b, x) }

func (w *benc) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// maxBackRefs bounds the strings a record may refer back to.
const maxBackRefs = 32

// str appends a string: uvarint(len<<1) and its bytes, or uvarint(i<<1|1)
// for the i-th string the record wrote before.
func (w *benc) str(s string) {
	if s != "" {
		for i, t := range w.strs {
			if t == s {
				w.uvarint(uint64(i)<<1 | 1)
				return
			}
		}
		if len(w.strs) < maxBackRefs {
			w.strs = append(w.strs, s)
		}
	}
	w.uvarint(uint64(len(s)) << 1)
	w.b = append(w.b, s...)
}

// hash appends a body hash: 0 and its 32 bytes for 64 lowercase hex
// digits (what receiptd writes), else 1 and the string.
func (w *benc) hash(s string) {
	if len(s) == 64 {
		var raw [32]byte
		if ok := unhexLower(raw[:], s); ok {
			w.b = append(w.b, 0)
			w.b = append(w.b, raw[:]...)
			return
		}
	}
	w.b = append(w.b, 1)
	w.str(s)
}

func unhexLower(dst []byte, s string) bool {
	val := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	for i := range dst {
		hi, ok1 := val(s[2*i])
		lo, ok2 := val(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// dec appends a decimal exactly: zigzag(exponent<<1) and the coefficient
// as a varint when it fits in 63 bits, else zigzag(exponent<<1|1) and the
// coefficient's decimal text.
func (w *benc) dec(d decimal.Decimal) {
	exp := int64(d.Exponent())
	if d.NumDigits() <= 18 {
		w.varint(exp << 1)
		w.varint(d.CoefficientInt64())
		return
	}
	w.varint(exp<<1 | 1)
	c := d.Coefficient().String()
	w.uvarint(uint64(len(c)))
	w.b = append(w.b, c...)
}

// time appends an instant and the offset of its zone: what its JSON
// shows. Zone names are not kept (JSON does not show them).
func (w *benc) time(t time.Time) {
	_, off := t.Zone()
	w.varint(t.Unix())
	ns := uint64(t.Nanosecond()) << 1
	if off != 0 {
		ns |= 1
	}
	w.uvarint(ns)
	if off != 0 {
		w.varint(int64(off))
	}
}

// bdec reads a record's fields. The first error sticks (err) and every
// read after it returns zero values.
type bdec struct {
	b   []byte
	i   int
	err error
	// s is b as a string: a record's strings share its one allocation.
	s    string
	strs []string
}

func newBdec(b []byte) bdec { return bdec{b: b, s: string(b)} }

func (r *bdec) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w at byte %d of %d", errCorrupt, r.i, len(r.b))
	}
	r.i = len(r.b)
}

func (r *bdec) done() bool { return r.i >= len(r.b) }

func (r *bdec) byte() byte {
	if r.i >= len(r.b) {
		r.fail()
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *bdec) uvarint() uint64 {
	x, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.i += n
	return x
}

func (r *bdec) varint() int64 {
	x, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.i += n
	return x
}

func (r *bdec) bool() bool { return r.byte() != 0 }

func (r *bdec) str() string {
	x := r.uvarint()
	if x&1 == 1 {
		if x>>1 >= uint64(len(r.strs)) {
			r.fail()
			return ""
		}
		return r.strs[x>>1]
	}
	n := x >> 1
	if n > uint64(len(r.b)-r.i) {
		r.fail()
		return ""
	}
	s := r.s[r.i : r.i+int(n)]
	r.i += int(n)
	if s != "" && len(r.strs) < maxBackRefs {
		r.strs = append(r.strs, s)
	}
	return s
}

func (r *bdec) hash() string {
	switch r.byte() {
	case 0:
		if len(r.b)-r.i < 32 {
			r.fail()
			return ""
		}
		var out [64]byte
		for j, c := range r.b[r.i : r.i+32] {
			out[2*j], out[2*j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		}
		r.i += 32
		return string(out[:])
	case 1:
		return r.str()
	}
	r.fail()
	return ""
}

func (r *bdec) dec() decimal.Decimal {
	e := r.varint()
	exp := e >> 1
	if exp != int64(int32(exp)) {
		r.fail()
		return decimal.Zero
	}
	if e&1 == 0 {
		c := r.varint()
		if c == 0 && exp == 0 {
			return decimal.Zero
		}
		return decimal.New(c, int32(exp))
	}
	n := r.uvarint()
	if n > uint64(len(r.b)-r.i) {
		r.fail()
		return decimal.Zero
	}
	v, ok := new(big.Int).SetString(r.s[r.i:r.i+int(n)], 10)
	r.i += int(n)
	if !ok {
		r.fail()
		return decimal.Zero
	}
	return decimal.NewFromBigInt(v, int32(exp))
}

func (r *bdec) time() time.Time {
	sec := r.varint()
	ns := r.uvarint()
	off := int64(0)
	if ns&1 == 1 {
		off = r.varint()
	}
	if ns>>1 >= 1e9 || off != int64(int32(off)) {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(ns>>1)).In(zone(int(off)))
}

func (r *bdec) ptime() *time.Time {
	t := r.time()
	return &t
}

func (r *bdec) pdec() *decimal.Decimal {
	d := r.dec()
	return &d
}

// zones caches the fixed zones of the offsets decoded times carry.
var zones sync.Map // int → *time.Location

// zone returns the location of a time decoded with offset off (seconds
// east of UTC): UTC for 0, else a fixed zone without a name.
func zone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if l, ok := zones.Load(off); ok {
		return l.(*time.Location)
	}
	l, _ := zones.LoadOrStore(off, time.FixedZone("", off))
	return l.(*time.Location)
}

// timeInJSONRange reports whether encoding/json can encode t (years 0 to
// 9999, a zone offset under 24 hours).
func timeInJSONRange(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}
