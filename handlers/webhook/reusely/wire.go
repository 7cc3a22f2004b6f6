package reusely

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

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
		if s, ok = jsonfield.String(raw); !ok {
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
	case !jsonfield.Present(raw):
		return "", false
	case raw[0] == '"':
		s, ok := jsonfield.String(raw)
		return s, ok && s != ""
	case raw[0] == '-' || isDigit(raw[0]):
		return string(raw), jsonfield.IsNumber(string(raw))
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
