package reusely

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// object is a JSON object decoded one level deep: every member kept as its
// raw JSON text. Keys match exactly (encoding/json's struct decoding would
// match "OBJECT_ID" to object_id); of a key sent twice, the last wins.
type object map[string]json.RawMessage

// decodeObject decodes raw as a JSON object. ok is false for any other JSON
// value, including null.
func decodeObject(raw json.RawMessage) (o object, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, false
	}
	return o, true
}

// present reports whether a field was sent with a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// jsonString returns the value of a JSON string; ok is false for any other
// JSON value or an absent field.
func jsonString(raw json.RawMessage) (s string, ok bool) {
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

// maxIDLen bounds an entity id: it becomes part of a stream id.
const maxIDLen = 256

// jsonID returns an identifier sent as a JSON string, or as a JSON number
// (its text). ok is false for anything else, an empty string, an id longer
// than 256 bytes or one holding a control character.
func jsonID(raw json.RawMessage) (id string, ok bool) {
	if len(raw) > 0 && (raw[0] == '-' || isDigit(raw[0])) {
		if !isJSONNumber(string(raw)) {
			return "", false
		}
		id = string(raw)
	} else if id, ok = jsonString(raw); !ok {
		return "", false
	}
	if id == "" || len(id) > maxIDLen {
		return "", false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return "", false
		}
	}
	return id, true
}

// requiredID is jsonID for a field the delivery cannot be normalized
// without.
func requiredID(raw json.RawMessage, name string) (string, error) {
	if id, ok := jsonID(raw); ok {
		return id, nil
	}
	if !present(raw) {
		return "", fmt.Errorf("no %s", name)
	}
	return "", fmt.Errorf("%s is not an id (a non-empty string of at most %d printable bytes)", name, maxIDLen)
}

// maxSignedDigits bounds object_id and timestamp: 19 digits always fit an
// int64.
const maxSignedDigits = 19

// errNotDigits: a signed field that is not a canonical unsigned integer.
var errNotDigits = errors.New("not an unsigned integer of at most 19 digits without leading zeros")

// signedDigits returns the decimal text of object_id or timestamp exactly as
// the signature covers it: a JSON integer, or a JSON string holding one,
// with no sign, fraction, exponent or leading zero. Nothing else is
// accepted, so a value has one spelling and the concatenation the signature
// covers is the one the sender computed.
func signedDigits(raw json.RawMessage) (string, error) {
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var ok bool
		if s, ok = jsonString(raw); !ok {
			return "", errNotDigits
		}
	}
	if s == "" || len(s) > maxSignedDigits || (s[0] == '0' && len(s) > 1) {
		return "", errNotDigits
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return "", errNotDigits
		}
	}
	return s, nil
}

// attribute renders a descriptive field for EntityEventRecorded.Attributes:
// a string as it is, a number as its text, a boolean as true or false.
// ok is false for null, objects, arrays, an absent field and an empty
// string.
func attribute(raw json.RawMessage) (string, bool) {
	switch {
	case !present(raw):
		return "", false
	case raw[0] == '"':
		s, ok := jsonString(raw)
		return s, ok && s != ""
	case raw[0] == '-' || isDigit(raw[0]):
		return string(raw), isJSONNumber(string(raw))
	case string(raw) == "true" || string(raw) == "false":
		return string(raw), true
	}
	return "", false
}

// Bounds on a decimal: enough for any payout, and small enough that printing
// one never allocates much (decimal's own limit on the exponent is 10000).
const (
	maxDecimalText     = 64
	maxDecimalExponent = 64
)

// decimalField parses an amount from its JSON text: a JSON number, or a JSON
// string holding a JSON number (Reusely sends "960.00"). ok is false when
// the field is absent, null or "". Any other value is an error: amounts are
// never guessed.
func decimalField(raw json.RawMessage, name string) (d decimal.Decimal, ok bool, err error) {
	if !present(raw) {
		return decimal.Decimal{}, false, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		s, isString := jsonString(raw)
		if !isString {
			return decimal.Decimal{}, false, fmt.Errorf("%s is not a number", name)
		}
		if s == "" {
			return decimal.Decimal{}, false, nil
		}
		text = s
	}
	if len(text) > maxDecimalText || !isJSONNumber(text) {
		return decimal.Decimal{}, false, fmt.Errorf("%s: %.32q is not a decimal number of at most %d characters", name, text, maxDecimalText)
	}
	d, err = decimal.NewFromString(text)
	if err != nil {
		return decimal.Decimal{}, false, fmt.Errorf("%s: %w", name, err)
	}
	if e := d.Exponent(); e < -maxDecimalExponent || e > maxDecimalExponent {
		return decimal.Decimal{}, false, fmt.Errorf("%s: %.32q: exponent out of range", name, text)
	}
	return d, true, nil
}

// isJSONNumber reports whether s is exactly a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
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

// parseUnix parses the canonical digits signedDigits returned.
func parseUnix(digits string) (int64, error) {
	return strconv.ParseInt(digits, 10, 64)
}
