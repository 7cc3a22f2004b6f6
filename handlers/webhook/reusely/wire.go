package reusely

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// The field readers every provider shares (handlers/webhook/internal/jsonfield).
var (
	present      = jsonfield.Present
	jsonString   = jsonfield.String
	isJSONNumber = jsonfield.IsNumber
	jsonID       = jsonfield.ID
)

// maxIDLen bounds an id: it becomes part of a stream id or a dedupe key.
const maxIDLen = jsonfield.MaxIDLen

// decimalField is jsonfield.Decimal without the number's text.
func decimalField(raw json.RawMessage, name string) (decimal.Decimal, bool, error) {
	d, _, ok, err := jsonfield.Decimal(raw, name)
	return d, ok, err
}

// object is a JSON object decoded one level deep by jsonfield.Object: every
// member kept as its raw JSON text. Keys match exactly (encoding/json's
// struct decoding would match "OBJECT_ID" to object_id); of a key sent
// twice, the last wins — as the sender's JavaScript reads the body.
type object map[string]json.RawMessage

// decodeObject decodes raw as a JSON object. ok is false for any other JSON
// value, including null.
func decodeObject(raw json.RawMessage) (o object, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	o, err := jsonfield.Object(raw)
	if err != nil {
		return nil, false
	}
	return o, true
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

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseUnix parses the canonical digits signedDigits returned.
func parseUnix(digits string) (int64, error) {
	return strconv.ParseInt(digits, 10, 64)
}
