package reap

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxStringifyDepth bounds the nesting of arrays and objects CompactJSON
// follows: the limit of encoding/json, so that a body CompactJSON refuses
// for its depth is one the handler could not decode anyway.
const maxStringifyDepth = 10000

// errNotStringifiable is returned (wrapped) by CompactJSON for a body
// JavaScript's JSON.parse would reject, or one this implementation declines
// to re-encode (invalid UTF-8, nesting past maxStringifyDepth).
var errNotStringifiable = errors.New("reap: body has no compact JSON form")

// CompactJSON returns the bytes that JavaScript's
// JSON.stringify(JSON.parse(text)) produces for body, encoded as UTF-8 (what
// a Node.js sender signs, by the seed's verification example). It is not
// json.Compact: besides dropping insignificant whitespace it re-encodes the
// document the way a JavaScript engine does:
//
//   - Numbers become IEEE 754 doubles, printed as Number.prototype.toString
//     prints them: 1.0 → 1, 1E2 → 100, 0.10 → 0.1, -0 → 0, 1e21 → 1e+21,
//     0.0000001 → 1e-7, 12345678901234567890 → 12345678901234567000, and a
//     number too large for a double (1e400) → null.
//   - Strings are unescaped and re-escaped minimally: "\u00e9" → "é",
//     "\/" → "/", "\u0041" → "A", "\u001F" → "\u001f", "\u0008" → "\b";
//     only '"', '\\' and control characters are escaped (never '/', '<',
//     '>', '&', U+2028 or U+2029), and a lone UTF-16 surrogate is written
//     as a lower-case \u escape.
//   - In an object, a key given twice keeps its first position and its last
//     value, and keys that are array indices ("0", "7", "42"; not "07" or
//     "-1") come first, in ascending numeric order, before the other keys
//     in their order of first appearance.
//
// It fails (an error, never a panic) on anything JSON.parse rejects, on
// invalid UTF-8 (which a JavaScript sender cannot produce) and on nesting
// deeper than 10000.
func CompactJSON(body []byte) ([]byte, error) {
	s := stringifier{in: body, out: make([]byte, 0, len(body))}
	s.skipSpace()
	if err := s.value(); err != nil {
		return nil, err
	}
	s.skipSpace()
	if s.pos != len(s.in) {
		return nil, s.fail("data after the top-level value")
	}
	return s.out, nil
}

// stringifier is one CompactJSON run: a recursive-descent JSON parser that
// writes the JavaScript re-encoding of what it reads as it goes, and fixes
// up an object's members once it has read them all.
type stringifier struct {
	in    []byte
	pos   int
	out   []byte
	depth int
}

func (s *stringifier) fail(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errNotStringifiable, s.pos, fmt.Sprintf(format, args...))
}

func (s *stringifier) skipSpace() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value reads one JSON value at s.pos (no leading space) and writes its
// re-encoding.
func (s *stringifier) value() error {
	if s.pos >= len(s.in) {
		return s.fail("unexpected end of input")
	}
	switch c := s.in[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.str()
	case c == '-' || isDigit(c):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.fail("unexpected character %q", c)
	}
}

func (s *stringifier) literal(lit string) error {
	if !bytes.HasPrefix(s.in[s.pos:], []byte(lit)) {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	s.out = append(s.out, lit...)
	return nil
}

func (s *stringifier) enter() error {
	s.depth++
	if s.depth > maxStringifyDepth {
		return s.fail("nested deeper than %d", maxStringifyDepth)
	}
	return nil
}

func (s *stringifier) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // '['
	s.out = append(s.out, '[')
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == ']' {
		s.pos++
		s.out = append(s.out, ']')
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.in) {
			return s.fail("unterminated array")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
			s.out = append(s.out, ',')
		case ']':
			s.pos++
			s.out = append(s.out, ']')
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or ']' in array")
		}
	}
}

// member is one "key":value of an object as written to s.out: out[start:
// colon] is the encoded key (with its quotes), out[start:end] the whole
// member.
type member struct {
	start, colon, end int
	// index is the key's value if the key is an array index, else -1.
	index int64
}

func (s *stringifier) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // '{'
	s.out = append(s.out, '{')
	begin := len(s.out)
	var members []member
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == '}' {
		s.pos++
		s.out = append(s.out, '}')
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != '"' {
			return s.fail("expected a string key in object")
		}
		if len(members) > 0 {
			s.out = append(s.out, ',')
		}
		m := member{start: len(s.out)}
		if err := s.str(); err != nil {
			return err
		}
		m.colon = len(s.out)
		m.index = arrayIndex(s.out[m.start+1 : m.colon-1])
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != ':' {
			return s.fail("expected ':' after object key")
		}
		s.pos++
		s.out = append(s.out, ':')
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		m.end = len(s.out)
		members = append(members, m)
		s.skipSpace()
		if s.pos >= len(s.in) {
			return s.fail("unterminated object")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.reorder(begin, members)
			s.out = append(s.out, '}')
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or '}' in object")
		}
	}
}

// reorder rewrites the members of the object written from out[begin:] in
// the order JavaScript enumerates the properties JSON.parse created: a
// duplicated key keeps its first position and takes its last value, and
// array-index keys come first in ascending order. It does nothing in the
// common case (no duplicate, no index key out of place).
func (s *stringifier) reorder(begin int, members []member) {
	key := func(m member) []byte { return s.out[m.start:m.colon] }

	// last[i] is the member whose value the i-th distinct key takes, in
	// order of first appearance.
	var last []int
	var byKey map[string]int // for large objects; small ones scan
	dup := false
	for i, m := range members {
		j := -1
		if byKey != nil {
			if k, ok := byKey[string(key(m))]; ok {
				j = k
			}
		} else {
			for k, l := range last {
				if bytes.Equal(key(members[l]), key(m)) {
					j = k
					break
				}
			}
		}
		if j >= 0 {
			last[j], dup = i, true
			continue
		}
		last = append(last, i)
		if byKey == nil && len(last) > 16 {
			byKey = make(map[string]int, len(members))
			for k, l := range last {
				byKey[string(key(members[l]))] = k
			}
		} else if byKey != nil {
			byKey[string(key(m))] = len(last) - 1
		}
	}

	// Array-index keys first, ascending (they are distinct), then the
	// others in order of first appearance: a stable sort does both.
	order := slices.Clone(last)
	slices.SortStableFunc(order, func(a, b int) int {
		ia, ib := members[a].index, members[b].index
		switch {
		case ia >= 0 && ib >= 0:
			return cmp.Compare(ia, ib)
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		default:
			return 0
		}
	})
	if !dup && slices.Equal(order, last) {
		return
	}
	rebuilt := make([]byte, 0, len(s.out)-begin)
	for i, m := range order {
		if i > 0 {
			rebuilt = append(rebuilt, ',')
		}
		rebuilt = append(rebuilt, s.out[members[m].start:members[m].end]...)
	}
	s.out = append(s.out[:begin], rebuilt...)
}

// maxArrayIndex is 2³² − 2: the largest array index (ECMAScript's
// "array index" is an integer below 2³² − 1 in canonical decimal form).
const maxArrayIndex = 1<<32 - 2

// arrayIndex returns the value of an encoded key (without its quotes) that
// is an array index, or -1.
func arrayIndex(k []byte) int64 {
	if len(k) == 0 || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return -1
	}
	var n int64
	for _, c := range k {
		if !isDigit(c) {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxArrayIndex {
		return -1
	}
	return n
}

// str reads a JSON string and writes it as JSON.stringify quotes a string.
func (s *stringifier) str() error {
	s.pos++ // '"'
	s.out = append(s.out, '"')
	for {
		if s.pos >= len(s.in) {
			return s.fail("unterminated string")
		}
		c := s.in[s.pos]
		switch {
		case c == '"':
			s.pos++
			s.out = append(s.out, '"')
			return nil
		case c < 0x20:
			return s.fail("control character in string")
		case c == '\\':
			if err := s.escape(); err != nil {
				return err
			}
		case c < utf8.RuneSelf:
			s.pos++
			s.writeUnit(rune(c))
		default:
			r, n := utf8.DecodeRune(s.in[s.pos:])
			if r == utf8.RuneError && n <= 1 {
				return s.fail("invalid UTF-8")
			}
			s.out = append(s.out, s.in[s.pos:s.pos+n]...)
			s.pos += n
		}
	}
}

// escape reads one escape sequence (s.pos at the backslash).
func (s *stringifier) escape() error {
	if s.pos+1 >= len(s.in) {
		return s.fail("unterminated escape")
	}
	c := s.in[s.pos+1]
	s.pos += 2
	switch c {
	case '"', '\\', '/':
		s.writeUnit(rune(c))
	case 'b':
		s.writeUnit('\b')
	case 'f':
		s.writeUnit('\f')
	case 'n':
		s.writeUnit('\n')
	case 'r':
		s.writeUnit('\r')
	case 't':
		s.writeUnit('\t')
	case 'u':
		u, ok := hex4(s.in[s.pos:])
		if !ok {
			return s.fail("invalid \\u escape")
		}
		s.pos += 4
		if utf16.IsSurrogate(u) && u < 0xdc00 {
			// A high surrogate: a pair if a low surrogate escape follows.
			if rest := s.in[s.pos:]; len(rest) >= 6 && rest[0] == '\\' && rest[1] == 'u' {
				if lo, ok := hex4(rest[2:]); ok && 0xdc00 <= lo && lo <= 0xdfff {
					s.pos += 6
					s.out = utf8.AppendRune(s.out, utf16.DecodeRune(u, lo))
					return nil
				}
			}
		}
		s.writeUnit(u)
	default:
		return s.fail("invalid escape character %q", c)
	}
	return nil
}

// hex4 decodes four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var v byte
		switch {
		case isDigit(c):
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// writeUnit writes one UTF-16 code unit (or a whole rune) as
// JSON.stringify's QuoteJSONString writes it.
func (s *stringifier) writeUnit(r rune) {
	const hexDigits = "0123456789abcdef"
	switch {
	case r == '"':
		s.out = append(s.out, '\\', '"')
	case r == '\\':
		s.out = append(s.out, '\\', '\\')
	case r == '\b':
		s.out = append(s.out, '\\', 'b')
	case r == '\f':
		s.out = append(s.out, '\\', 'f')
	case r == '\n':
		s.out = append(s.out, '\\', 'n')
	case r == '\r':
		s.out = append(s.out, '\\', 'r')
	case r == '\t':
		s.out = append(s.out, '\\', 't')
	case r < 0x20 || utf16.IsSurrogate(r):
		s.out = append(s.out, '\\', 'u',
			hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	default:
		s.out = utf8.AppendRune(s.out, r)
	}
}

// number reads a JSON number and writes it as JavaScript prints the double
// it parses to.
func (s *stringifier) number() error {
	start := s.pos
	if s.in[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.in) && s.in[s.pos] == '0':
		s.pos++
	case s.pos < len(s.in) && '1' <= s.in[s.pos] && s.in[s.pos] <= '9':
		s.skipDigits()
	default:
		return s.fail("invalid number")
	}
	if s.pos < len(s.in) && s.in[s.pos] == '.' {
		s.pos++
		if s.pos >= len(s.in) || !isDigit(s.in[s.pos]) {
			return s.fail("invalid number")
		}
		s.skipDigits()
	}
	if s.pos < len(s.in) && (s.in[s.pos] == 'e' || s.in[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.in) && (s.in[s.pos] == '+' || s.in[s.pos] == '-') {
			s.pos++
		}
		if s.pos >= len(s.in) || !isDigit(s.in[s.pos]) {
			return s.fail("invalid number")
		}
		s.skipDigits()
	}
	f, err := strconv.ParseFloat(string(s.in[start:s.pos]), 64)
	if err != nil && !math.IsInf(f, 0) {
		return s.fail("number: %v", err)
	}
	s.out = appendJSNumber(s.out, f)
	return nil
}

func (s *stringifier) skipDigits() {
	for s.pos < len(s.in) && isDigit(s.in[s.pos]) {
		s.pos++
	}
}

// appendJSNumber appends f as JSON.stringify writes a number: NaN and
// ±Infinity as null, otherwise ECMAScript's Number::toString(10) — the
// shortest digits that round-trip (as strconv finds them), in fixed
// notation for 1e-6 <= |f| < 1e21 and in exponent notation ("1e+21",
// "1.5e-7") outside.
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // and -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d[.ddd]e±XX
	mant, exp, _ := bytes.Cut(e, []byte{'e'})
	x, _ := strconv.Atoi(string(exp))
	var digits []byte
	if len(mant) > 1 {
		digits = append(append(digits, mant[0]), mant[2:]...)
	} else {
		digits = mant
	}
	k, n := len(digits), x+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
