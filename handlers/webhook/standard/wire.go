package standard

import (
	"encoding/json"
	"fmt"
	"time"

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

// object is a JSON object decoded one level deep by jsonfield.Object: every
// member kept as its raw JSON text. Keys match exactly (encoding/json's
// struct decoding would match "TYPE" to type); of a key sent twice, the
// last wins — as the sender's JavaScript reads the body.
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

// parseTime parses an optional RFC 3339 timestamp (the payload timestamp
// the Standard Webhooks spec recommends, "2022-11-03T20:26:10.344522Z"); a
// missing or unparsable one is omitted (nil), never an error.
func parseTime(raw json.RawMessage) *time.Time {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !jsonfield.TimeInRange(t) {
		return nil
	}
	t = t.UTC()
	return &t
}
