package retm

import (
	"encoding/json"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// timeLayouts are the timestamp forms accepted: RFC 3339 with its zone,
// then those RETM sends without one ("2025-12-17 19:26:35", "2025-12-17"),
// read in the source's location (UTC by default). Month and day may have
// one or two digits, the fraction up to nine.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-1-2 15:04:05.999999999",
	"2006-1-2T15:04:05.999999999",
	"2006-1-2 15:04",
	"2006-1-2",
}

// parseTime parses an optional timestamp; a missing or unparsable one is
// omitted (nil), never an error. So is .NET's DateTime.MinValue
// ("0001-01-01T00:00:00", RETM's documented placeholder), which means "not
// set", not the year 1: any time written in the year 1 or before.
func parseTime(raw json.RawMessage, loc *time.Location) *time.Time {
	s, ok := jsonfield.String(raw)
	if !ok || s == "" {
		return nil
	}
	t, ok := jsonfield.ParseTime(s, loc, timeLayouts)
	if !ok || t.Year() <= 1 {
		return nil
	}
	t = t.UTC()
	return &t
}
