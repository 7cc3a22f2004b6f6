package retm

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// The field readers every provider shares (handlers/webhook/internal/jsonfield).
var (
	present      = jsonfield.Present
	jsonString   = jsonfield.String
	isJSONNumber = jsonfield.IsNumber
	jsonID       = jsonfield.ID
	requiredID   = jsonfield.RequiredID
	decimalField = jsonfield.Decimal
)

// maxIDLen bounds an id: it becomes part of a stream id or a dedupe key.
const maxIDLen = jsonfield.MaxIDLen

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
	if err != nil || t.Year() <= 1 || !jsonfield.TimeInRange(t) {
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
