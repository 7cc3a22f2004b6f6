package jsonfield_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

func TestTime(t *testing.T) {
	for _, c := range []struct {
		raw     string
		layouts []string
		want    string // RFC 3339 in UTC; "" for nil
	}{
		{`"2025-11-07T19:12:34.567Z"`, jsonfield.RFC3339, "2025-11-07T19:12:34.567Z"},
		{`"2025-10-08T02:00:00+02:00"`, jsonfield.RFC3339, "2025-10-08T00:00:00Z"},
		{`"2025-11-21T15:00:45.1070976"`, jsonfield.RFC3339, ""},
		{`"2025-11-21T15:00:45.1070976"`, jsonfield.RFC3339OrLocal, "2025-11-21T15:00:45.1070976Z"},
		{`"2025-11-21 15:00:45"`, jsonfield.RFC3339OrLocal, "2025-11-21T15:00:45Z"},
		{`"0000-01-01T00:00:00+01:00"`, jsonfield.RFC3339OrLocal, ""}, // year −1 in UTC
		{`"9999-12-31T23:00:00-01:00"`, jsonfield.RFC3339OrLocal, ""}, // year 10000 in UTC
		{`""`, jsonfield.RFC3339OrLocal, ""},
		{`null`, jsonfield.RFC3339OrLocal, ""},
		{`1732201245`, jsonfield.RFC3339OrLocal, ""},
		{`"yesterday"`, jsonfield.RFC3339OrLocal, ""},
	} {
		got := jsonfield.Time(json.RawMessage(c.raw), c.layouts)
		if (got == nil) != (c.want == "") || got != nil && (got.Format(time.RFC3339Nano) != c.want || got.Location() != time.UTC) {
			t.Errorf("Time(%s, %q) = %v, want %q", c.raw, c.layouts, got, c.want)
		}
	}
}

// TestParseTime: a zoneless text is read in the location given, and the
// time comes back in the location it was written in, so that a caller can
// judge the year as written.
func TestParseTime(t *testing.T) {
	riyadh := time.FixedZone("AST", 3*60*60)
	layouts := []string{time.RFC3339Nano, "2006-1-2 15:04:05"}
	got, ok := jsonfield.ParseTime("2025-12-17 19:26:35", riyadh, layouts)
	if !ok || got.Location() != riyadh || !got.Equal(time.Date(2025, 12, 17, 16, 26, 35, 0, time.UTC)) {
		t.Errorf("zoneless: %v, %v", got, ok)
	}
	got, ok = jsonfield.ParseTime("0001-01-01T00:00:00Z", riyadh, layouts)
	if !ok || got.Year() != 1 {
		t.Errorf("year 1: %v, %v", got, ok)
	}
	if _, ok := jsonfield.ParseTime("0001-01-01 01:00:00", riyadh, layouts); ok {
		t.Errorf("0001-01-01 01:00 at +03:00 is in year 0 in UTC, out of range")
	}
}
