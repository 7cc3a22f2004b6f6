// Package jsonfield decodes a provider's JSON body and reads its fields the
// way every provider in handlers/webhook needs them.
//
// Decoding (Decoder, Object) reads a body as the sender's JavaScript reads
// it (JSON.parse): keys match exactly, a repeated key takes its last value,
// a repeated object is its last one, whole. Each wanted field is kept as
// its raw JSON text (json.RawMessage); nothing else is built. A body is
// JSON here exactly when json.Valid says so.
//
// Reading (String, ID, Decimal, Time) takes one field's raw text: a number
// is parsed from its text, never through float64, and a field of an
// unexpected type can be told from an absent one.
package jsonfield

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Present reports whether a field was sent with a value other than null.
func Present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// String returns the value of a JSON string; ok is false for any other
// JSON value or an absent field.
func String(raw json.RawMessage) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// MaxIDLen bounds an id: it becomes part of a stream id or a dedupe key.
const MaxIDLen = 256

// ID returns an identifier sent as a JSON string or as a JSON number
// (its text). ok is false for anything else and for a text IsID refuses.
func ID(raw json.RawMessage) (id string, ok bool) {
	if len(raw) > 0 && (raw[0] == '-' || isDigit(raw[0])) {
		if !IsNumber(string(raw)) {
			return "", false
		}
		id = string(raw)
	} else if id, ok = String(raw); !ok {
		return "", false
	}
	if !IsID(id) {
		return "", false
	}
	return id, true
}

// IsID reports whether id can name an entity: not empty, at most MaxIDLen
// bytes, and no control character or U+FFFD (what invalid UTF-8 and lone
// surrogates decode to).
func IsID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// RequiredID is ID for a field the delivery cannot be normalized
// without.
func RequiredID(raw json.RawMessage, name string) (string, error) {
	if id, ok := ID(raw); ok {
		return id, nil
	}
	return "", NotID(raw, name)
}

// NotID is the error of a required id field named name whose value raw an
// ID reader refused.
func NotID(raw json.RawMessage, name string) error {
	if !Present(raw) {
		return fmt.Errorf("no %s", name)
	}
	return fmt.Errorf("%s is not an id (a non-empty string or number of at most %d printable bytes)", name, MaxIDLen)
}

// FirstID returns the first valid id (ID) among raws; "" if none is.
func FirstID(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if id, ok := ID(raw); ok {
			return id
		}
	}
	return ""
}

// FirstString returns the first non-empty JSON string among raws; "" if
// none is.
func FirstString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if s, ok := String(raw); ok && s != "" {
			return s
		}
	}
	return ""
}

// Truncate cuts s to at most n bytes, on a rune boundary: a descriptive
// field is recorded bounded (the raw body keeps it whole).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Bounds on a decimal: enough for any amount or point total, small enough
// that printing one never allocates much.
const (
	MaxDecimalText     = 64
	MaxDecimalExponent = 64
)

// Decimal parses a number from its JSON text; a JSON string holding a
// JSON number ("10.5") is accepted too. ok is false when the field is
// absent, null or "". Anything else is an error: amounts are never
// guessed. text is the number's text as sent.
func Decimal(raw json.RawMessage, name string) (d decimal.Decimal, text string, ok bool, err error) {
	if !Present(raw) {
		return decimal.Decimal{}, "", false, nil
	}
	text = string(raw)
	if raw[0] == '"' {
		s, isString := String(raw)
		if !isString {
			return decimal.Decimal{}, "", false, fmt.Errorf("%s is not a number", name)
		}
		if s == "" {
			return decimal.Decimal{}, "", false, nil
		}
		text = s
	}
	if len(text) > MaxDecimalText || !IsNumber(text) {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %.32q is not a decimal number of at most %d characters", name, text, MaxDecimalText)
	}
	d, err = decimal.NewFromString(text)
	if err != nil {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %w", name, err)
	}
	if e := d.Exponent(); e < -MaxDecimalExponent || e > MaxDecimalExponent {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %.32q: exponent out of range", name, text)
	}
	return d, text, true, nil
}

// IsNumber reports whether s is exactly a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func IsNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
