package standard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// maxEventType bounds the body's type: longer ones cannot be recorded in
// full (the handler keeps 128 bytes of the provider event type).
const maxEventType = 128

// Normalize turns a verified Standard Webhooks delivery into an
// aggregate.EntityEventRecorded on {category}-{source}.{entity id}. See the
// package documentation for the field mapping and what is required.
//
// The dedupe key is the webhook-id and the body's SHA-256, the slot the
// webhook-id, with the Correct policy: a retry (same id, same body) is a
// duplicate, and another body under an id already recorded is appended as
// a correction rather than silently taken for a retry.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	top, decodeErr := jsonfield.Object(d.Body)
	eventType, _ := jsonfield.String(top["type"])
	n := webhook.Normalized{EventType: eventType}
	switch {
	case errors.Is(decodeErr, jsonfield.ErrNotObject):
		return n, p.unnormalizable(eventType, "body is not a JSON object")
	case decodeErr != nil:
		return n, p.unnormalizable(eventType, "decode body: %v", decodeErr)
	case eventType == "":
		return n, p.unnormalizable(eventType, "no type string")
	case !validEventType(eventType):
		n.EventType = ""
		return n, p.unnormalizable("", "type is longer than %d bytes or holds a control character", maxEventType)
	}

	fields := resolver{top: top}
	entityID, err := jsonfield.RequiredID(fields.get(p.entityPath), p.entityField)
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}
	sha := d.BodySHA256
	if sha == "" {
		sum := sha256.Sum256(d.Body)
		sha = hex.EncodeToString(sum[:])
	}
	// The payload timestamp the spec recommends, RFC 3339
	// ("2022-11-03T20:26:10.344522Z"); omitted when it is not one.
	occurred := jsonfield.Time(top["timestamp"], jsonfield.RFC3339)
	rec := aggregate.EntityEventRecorded{
		Source:     p.source,
		Kind:       p.category,
		EntityID:   entityID,
		EventType:  eventType,
		OccurredAt: occurred,
		BodySHA256: sha,
		Raw:        d.Body,
	}
	if status, ok := jsonfield.String(fields.get(p.statusPath)); ok && status != "" {
		rec.Status, rec.StatusAt = status, occurred
	}

	f := aggregate.Fact{
		Stream:     aggregate.StreamID(p.category, p.source, entityID),
		Type:       aggregate.TypeEntityEventRecorded,
		Data:       rec,
		OnConflict: aggregate.Correct,
	}
	if id := d.Verification.DeliveryID; id != "" {
		f.SlotKey = "webhook-id:" + id
		f.DedupeKey = f.SlotKey + ":" + sha
	} else {
		// Not reached through Verify, which always sets the id.
		f.DedupeKey = "sha256:" + sha
	}
	n.Fact = f
	return n, nil
}

// validEventType reports whether a type can be recorded as sent.
func validEventType(t string) bool {
	if len(t) > maxEventType {
		return false
	}
	for _, r := range t {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("standard: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}

// resolver reads fields by path from a decoded body, decoding each nested
// object once.
type resolver struct {
	top    map[string]json.RawMessage
	nested map[string]map[string]json.RawMessage // by the path prefix, joined with '.'
}

// get returns the raw value at path; nil when a step is absent or not an
// object.
func (r *resolver) get(path []string) json.RawMessage {
	o := r.top
	for i, k := range path[:len(path)-1] {
		prefix := strings.Join(path[:i+1], ".")
		sub, ok := r.nested[prefix]
		if !ok {
			if sub, ok = jsonfield.ObjectValue(o[k]); !ok {
				return nil
			}
			if r.nested == nil {
				r.nested = make(map[string]map[string]json.RawMessage, 1)
			}
			r.nested[prefix] = sub
		}
		o = sub
	}
	return o[path[len(path)-1]]
}
