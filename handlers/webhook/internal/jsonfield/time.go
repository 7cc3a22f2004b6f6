package jsonfield

import (
	"encoding/json"
	"time"
)

// Timestamp layouts more than one provider accepts. A layout without a
// zone reads the text in the location given to ParseTime (UTC for Time).
var (
	// RFC3339 is a time with its zone as RFC 3339 writes it, any fraction
	// ("2022-11-03T20:26:10.344522Z").
	RFC3339 = []string{time.RFC3339Nano}
	// RFC3339OrLocal is RFC3339, or the same date and time without a zone,
	// 'T' or ' ' between them, up to nine fraction digits
	// ("2025-11-21T15:00:45.1070976").
	RFC3339OrLocal = []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999",
	}
)

// Time reads an optional timestamp field: a JSON string in one of layouts
// (ParseTime, zoneless ones read as UTC), returned in UTC. A field that is
// absent, null, not a string, empty, in no layout or out of range
// (TimeInRange) is nil, never an error: a descriptive time is omitted
// rather than failing a delivery.
func Time(raw json.RawMessage, layouts []string) *time.Time {
	s, ok := String(raw)
	if !ok || s == "" {
		return nil
	}
	t, ok := ParseTime(s, time.UTC, layouts)
	if !ok {
		return nil
	}
	t = t.UTC()
	return &t
}

// ParseTime parses s in the first of layouts that takes it (a layout
// without a zone reads s in loc) and reports whether the time is in range
// (TimeInRange). The time is in the location it was written in: its zone,
// or loc.
func ParseTime(s string, loc *time.Location, layouts []string) (time.Time, bool) {
	for _, layout := range layouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, TimeInRange(t)
		}
	}
	return time.Time{}, false
}

// TimeInRange reports whether t, in UTC, falls in the years 0001 to 9999:
// what RFC 3339 and an event's JSON can hold. A zoned text can parse to a
// time outside them ("0000-01-01T00:00:00+01:00" is in year −1 in UTC,
// "9999-12-31T23:00:00-01:00" in 10000), which no event could record.
func TimeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return 1 <= y && y <= 9999
}
