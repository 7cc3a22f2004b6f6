package reward

import (
	"encoding/json"
	"time"

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

// timeLayouts are the timestamp forms accepted: RFC 3339 (what Reward
// documents: "2024-12-14T15:29:18.821Z") and, leniently, a zoneless time
// with up to nine fraction digits, read as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

// parseTime parses an optional timestamp; a missing or unparsable one is
// omitted (nil), never an error.
func parseTime(raw json.RawMessage) *time.Time {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil && jsonfield.TimeInRange(t) {
			t = t.UTC()
			return &t
		}
	}
	return nil
}
