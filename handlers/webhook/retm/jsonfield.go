package retm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// The helpers below read one field kept as its raw JSON text, so that a
// number is parsed from its text (never through float64) and a field of an
// unexpected type can be told from an absent one.

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

// maxIDLen bounds an id: it becomes part of a stream id or a dedupe key.
const maxIDLen = 256

// jsonID returns an identifier sent as a JSON string or as a JSON number
// (its text). ok is false for anything else, an empty string, an id longer
// than maxIDLen bytes, or one holding a control character or invalid UTF-8.
func jsonID(raw json.RawMessage) (id string, ok bool) {
	if len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
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
	return "", fmt.Errorf("%s is not an id (a non-empty string or number of at most %d printable bytes)", name, maxIDLen)
}

// Bounds on a decimal: enough for any amount, small enough
// that printing one never allocates much.
const (
	maxDecimalText     = 64
	maxDecimalExponent = 64
)

// decimalField parses a number from its JSON text; a JSON string holding a
// JSON number ("10.5") is accepted too. ok is false when the field is
// absent, null or "". Anything else is an error: amounts are never
// guessed. text is the number's text as sent.
func decimalField(raw json.RawMessage, name string) (d decimal.Decimal, text string, ok bool, err error) {
	if !present(raw) {
		return decimal.Decimal{}, "", false, nil
	}
	text = string(raw)
	if raw[0] == '"' {
		s, isString := jsonString(raw)
		if !isString {
			return decimal.Decimal{}, "", false, fmt.Errorf("%s is not a number", name)
		}
		if s == "" {
			return decimal.Decimal{}, "", false, nil
		}
		text = s
	}
	if len(text) > maxDecimalText || !isJSONNumber(text) {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %.32q is not a decimal number of at most %d characters", name, text, maxDecimalText)
	}
	d, err = decimal.NewFromString(text)
	if err != nil {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %w", name, err)
	}
	if e := d.Exponent(); e < -maxDecimalExponent || e > maxDecimalExponent {
		return decimal.Decimal{}, "", false, fmt.Errorf("%s: %.32q: exponent out of range", name, text)
	}
	return d, text, true, nil
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

// zonedLayouts are timestamp forms that carry their zone (RFC 3339);
// zonelessLayouts those RETM sends without one ("2025-12-17 19:26:35",
// "2025-12-17"), read in the source's location (UTC by default). Month and
// day may have one or two digits, the fraction up to nine.
var (
	zonedLayouts    = []string{time.RFC3339Nano}
	zonelessLayouts = []string{
		"2006-1-2 15:04:05.999999999",
		"2006-1-2T15:04:05.999999999",
		"2006-1-2 15:04",
		"2006-1-2",
	}
)

// parseTime parses an optional timestamp; a missing or unparsable one is
// omitted (nil), never an error. So is .NET's DateTime.MinValue
// ("0001-01-01T00:00:00", RETM's documented placeholder), which means "not
// set", not the year 1.
func parseTime(raw json.RawMessage, loc *time.Location) *time.Time {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return nil
	}
	var (
		t   time.Time
		err error = errNoLayout
	)
	for _, layout := range zonedLayouts {
		if t, err = time.Parse(layout, s); err == nil {
			break
		}
	}
	if err != nil {
		for _, layout := range zonelessLayouts {
			if t, err = time.ParseInLocation(layout, s, loc); err == nil {
				break
			}
		}
	}
	if err != nil || t.Year() <= 1 {
		return nil
	}
	t = t.UTC()
	return &t
}

var errNoLayout = errors.New("no layout matched")

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
