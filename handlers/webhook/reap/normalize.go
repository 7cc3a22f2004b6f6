package reap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// EventAccountStatusChange is the one event type Reap sends.
const EventAccountStatusChange = "account_status_change"

// EntityKind is the kind (and stream category) of the entities Reap's
// events are about.
const EntityKind = aggregate.CategoryAccount

// Dedupe key prefixes: a delivery is identified by its data.eventId, or,
// when it has none, by the SHA-256 of its body's compact JSON form (of the
// raw body if it has none).
const (
	DedupeByEventID = "event:"
	DedupeByBody    = "body:"
)

// Attribute names of an aggregate.EntityEventRecorded, as Reap names the
// fields they come from.
const (
	AttrEventName         = "eventName"
	AttrMessage           = "message"
	AttrModerationComment = "moderationComment"
	AttrReviewRejectType  = "reviewRejectType"
	AttrRejectLabels      = "rejectLabels"
	AttrRequirementID     = "requirementId"
	AttrSlug              = "slug"
)

// maxAttributeLen bounds an attribute value (the raw body keeps the whole
// text); a longer one is cut on a rune boundary.
const maxAttributeLen = 1024

// Normalize turns a verified Reap delivery into a fact: an
// account_status_change becomes an aggregate.EntityEventRecorded of kind
// "account" on the stream account-{source}.{data.entityId}. See the package
// documentation for the field mapping and what is required.
//
// The body is read as JavaScript's JSON.parse reads it — keys matched
// exactly (case-sensitive), a repeated key's last value, numbers by value —
// so that the fact depends only on the JSON value a compact-JSON signature
// covers, not on how the body spells it.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	top, err := jsonfield.Object(d.Body)
	if err != nil {
		// Not an object, or not JSON at all (the handler tells those apart).
		return webhook.Normalized{}, p.unnormalizable("", "decode body: %v", err)
	}
	eventType, _ := jsonfield.String(top["eventType"])
	n := webhook.Normalized{EventType: eventType}
	if eventType == "" {
		return n, p.unnormalizable(eventType, "no eventType string")
	}
	if eventType != EventAccountStatusChange {
		return n, fmt.Errorf("reap: normalize delivery to %q: event type %.64q: %w", p.source, eventType, aggregate.ErrUnknownEvent)
	}
	data, _ := jsonfield.ObjectValue(top["data"]) // checked with the body
	if data == nil {
		return n, p.unnormalizable(eventType, "no data object")
	}
	entityID, err := requiredID(data["entityId"], "data.entityId")
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}

	rec := aggregate.EntityEventRecorded{
		Source:     p.source,
		Kind:       EntityKind,
		EntityID:   entityID,
		EventType:  EventAccountStatusChange,
		BodySHA256: d.BodySHA256,
		Raw:        d.Body,
	}
	if rec.BodySHA256 == "" {
		sum := sha256.Sum256(d.Body)
		rec.BodySHA256 = hex.EncodeToString(sum[:])
	}
	if raw := data["status"]; jsonfield.Present(raw) {
		status, ok := jsonfield.String(raw)
		if !ok {
			return n, p.unnormalizable(eventType, "data.status is not a string")
		}
		rec.Status = status
	}
	at, err := parseTimestamp(data["timestamp"])
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}
	rec.OccurredAt = at
	if rec.Status != "" {
		rec.StatusAt = at
	}
	rec.Attributes = attributes(top, data)

	var dedupe string
	if eventID, ok := jsonID(data["eventId"]); ok {
		dedupe = DedupeByEventID + eventID
		n.DeliveryID = eventID
	} else {
		dedupe = DedupeByBody + valueSHA256(d.Body, rec.BodySHA256)
	}
	n.Fact = aggregate.Fact{
		Stream:     aggregate.StreamID(aggregate.CategoryAccount, p.source, entityID),
		Type:       aggregate.TypeEntityEventRecorded,
		Data:       rec,
		DedupeKey:  dedupe,
		OnConflict: aggregate.Correct,
	}
	return n, nil
}

// valueSHA256 returns the hex SHA-256 of body's compact JSON form
// (CompactJSON), or bodySHA256 (the raw body's) when it has none. Two
// bodies with the same JSON value, as JavaScript reads it, have the same
// value hash: a delivery re-serialized by a proxy, or by someone replaying
// it under a compact-JSON signature, is still a duplicate.
func valueSHA256(body []byte, bodySHA256 string) string {
	compact, err := CompactJSON(body)
	if err != nil {
		return bodySHA256
	}
	sum := sha256.Sum256(compact)
	return hex.EncodeToString(sum[:])
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("reap: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}

// attributes collects the descriptive fields, each as text; absent, empty
// and non-scalar ones are left out. nil when there are none.
func attributes(top, data map[string]json.RawMessage) map[string]string {
	attrs := make(map[string]string, 7)
	put := func(name, value string) {
		if value != "" {
			attrs[name] = jsonfield.Truncate(value, maxAttributeLen)
		}
	}
	scalar := func(raw json.RawMessage) string { s, _ := scalarText(raw); return s }
	put(AttrEventName, scalar(top["eventName"]))
	put(AttrMessage, scalar(data["message"]))
	put(AttrModerationComment, scalar(data["moderationComment"]))
	put(AttrReviewRejectType, scalar(data["reviewRejectType"]))
	put(AttrRejectLabels, joinLabels(data["rejectLabels"]))
	put(AttrRequirementID, scalar(data["requirementId"]))
	put(AttrSlug, scalar(data["slug"]))
	if len(attrs) == 0 {
		return nil
	}
	return attrs
}

// joinLabels returns rejectLabels as one text: the scalar elements of an
// array joined by ", " (a single string is taken as it is).
func joinLabels(raw json.RawMessage) string {
	if s, ok := scalarText(raw); ok {
		return s
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return ""
	}
	labels := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := scalarText(it); ok && s != "" {
			labels = append(labels, s)
		}
	}
	return strings.Join(labels, ", ")
}

// scalarText returns a JSON string's value, a number as JavaScript prints
// it (jsNumber) or a boolean's literal; ok is false for anything else
// (null, objects, arrays, absent).
func scalarText(raw json.RawMessage) (string, bool) {
	switch {
	case len(raw) == 0:
		return "", false
	case raw[0] == '"':
		return jsonfield.String(raw)
	case string(raw) == "true" || string(raw) == "false":
		return string(raw), true
	}
	return jsNumber(raw)
}

// jsNumber returns a JSON number's text as JSON.stringify(JSON.parse(…))
// writes it ("1.0" → "1", "1e2" → "100"): the number's value, not its
// spelling, so that what is normalized from a body is a function of the
// JSON value a compact-JSON signature covers. ok is false for anything that
// is not a JSON number, or one beyond a double's range (JavaScript reads it
// as Infinity and writes null).
func jsNumber(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || len(raw) > 512 || !jsonfield.IsNumber(string(raw)) {
		return "", false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return "", false
	}
	return string(appendJSNumber(nil, f)), true
}

// jsonID returns an identifier sent as a JSON string, or as a JSON number
// (as JavaScript prints it: 42.0 is "42", like 42). ok is false for
// anything else and for a text jsonfield.IsID refuses (empty, longer than
// 256 bytes, a control character or U+FFFD).
func jsonID(raw json.RawMessage) (id string, ok bool) {
	if len(raw) > 0 && (raw[0] == '-' || isDigit(raw[0])) {
		id, ok = jsNumber(raw)
	} else {
		id, ok = jsonfield.String(raw)
	}
	if !ok || !jsonfield.IsID(id) {
		return "", false
	}
	return id, true
}

// requiredID is jsonID for a field the delivery cannot be normalized
// without.
func requiredID(raw json.RawMessage, name string) (string, error) {
	if id, ok := jsonID(raw); ok {
		return id, nil
	}
	return "", jsonfield.NotID(raw, name)
}

// timeLayouts are the timestamp strings accepted: RFC 3339 as the seed
// shows it ("2024-03-20T10:00:00Z") and as JavaScript's toISOString writes
// it ("2024-03-20T10:00:00.000Z"), with any fraction and a zone as Z,
// ±hh:mm or ±hhmm; and the same without a zone, read as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// Unix timestamps: a count below epochMillisFrom is seconds (up to year
// 5138), from it on milliseconds (from March 1973); none may pass
// 9999-12-31T23:59:59.999Z.
const (
	epochMillisFrom = 100_000_000_000
	maxEpochMillis  = 253_402_300_799_999
)

// parseTimestamp parses data.timestamp: a string in one of timeLayouts, or
// Unix seconds or milliseconds as a JSON number of integral value or a
// string of digits. It
// returns nil for an absent, null or empty timestamp, and an error for one
// it cannot read: a status whose time is misread would be misordered.
func parseTimestamp(raw json.RawMessage) (*time.Time, error) {
	if !jsonfield.Present(raw) {
		return nil, nil
	}
	var text string
	if raw[0] != '"' {
		// A number, by its value: 1.7e12 is 1700000000000.
		if text, _ = jsNumber(raw); text == "" {
			text = string(raw)
		}
	} else {
		s, ok := jsonfield.String(raw)
		if !ok {
			return nil, fmt.Errorf("data.timestamp is not a string")
		}
		if s == "" {
			return nil, nil
		}
		text = s
		if t, ok := jsonfield.ParseTime(s, time.UTC, timeLayouts); ok {
			t = t.UTC()
			return &t, nil
		}
	}
	if t, ok := parseEpoch(text); ok {
		return &t, nil
	}
	return nil, fmt.Errorf("data.timestamp %.40q is not an RFC 3339 time nor Unix seconds or milliseconds", text)
}

// parseEpoch reads a string of decimal digits as Unix seconds or
// milliseconds (see epochMillisFrom).
func parseEpoch(s string) (time.Time, bool) {
	if s == "" || len(s) > 15 || (s[0] == '0' && len(s) > 1) {
		return time.Time{}, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxEpochMillis {
		return time.Time{}, false
	}
	if n < epochMillisFrom {
		return time.Unix(n, 0).UTC(), true
	}
	return time.UnixMilli(n).UTC(), true
}
