package standard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// object is a JSON object decoded one level deep: every member kept as its
// raw JSON text. Keys match exactly (encoding/json's struct decoding would
// match "TYPE" to type); of a key sent twice, the last wins.
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

// parseTime parses an optional RFC 3339 timestamp (the payload timestamp
// the Standard Webhooks spec recommends, "2022-11-03T20:26:10.344522Z"); a
// missing or unparsable one is omitted (nil), never an error.
func parseTime(raw json.RawMessage) *time.Time {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}
