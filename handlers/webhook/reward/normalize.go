package reward

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// KindUser is the EntityEventRecorded.Kind of a trigger event: the entity
// is the user the trigger fired for.
const KindUser = aggregate.CategoryUser

// The wire shapes: only the fields normalization reads, each kept as its raw
// JSON text. Everything else stays in the raw body. They are decoded by
// jsonfield.Decoder, as the sender's JavaScript reads the body: keys match
// exactly, the last of a repeated key wins.
type wireEnvelope struct {
	ID   json.RawMessage `json:"id"`
	Type json.RawMessage `json:"type"`
	Time json.RawMessage `json:"time"`
	Data *wireData       `json:"data"`
}

type wireData struct {
	User        *wireUser        `json:"user"`
	Value       json.RawMessage  `json:"value"`
	Trigger     *wireTrigger     `json:"trigger"`
	Transaction *wireTransaction `json:"transaction"`
}

type wireUser struct {
	ID json.RawMessage `json:"id"`
}

type wireTrigger struct {
	ID json.RawMessage `json:"id"`
}

type wireTransaction struct {
	ID     json.RawMessage `json:"id"`
	Amount json.RawMessage `json:"amount"`
}

var envelopeDecoder = jsonfield.NewDecoder[wireEnvelope]()

// Normalize turns a verified Reward delivery into a fact on the user's
// stream: trigger_event.created into aggregate.EntityEventRecorded,
// balance.credit_points_issued into aggregate.PointsCredited. See the
// package documentation for the mapping and what is required.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	var w wireEnvelope
	decodeErr := envelopeDecoder.Decode(d.Body, &w)
	eventType, _ := jsonfield.String(w.Type)
	n := webhook.Normalized{EventType: eventType}
	if decodeErr != nil {
		return n, p.unnormalizable(eventType, "decode body: %v", decodeErr)
	}
	if eventType == "" {
		return n, p.unnormalizable(eventType, "no type string")
	}
	if eventType != EventTriggerCreated && eventType != EventCreditIssued {
		return n, fmt.Errorf("reward: normalize delivery to %q: event type %.64q: %w", p.source, eventType, aggregate.ErrUnknownEvent)
	}

	// The envelope id is the delivery's identity; a body without one is
	// identified by its hash instead.
	sha := d.BodySHA256
	if sha == "" {
		sum := sha256.Sum256(d.Body)
		sha = hex.EncodeToString(sum[:])
	}
	dedupe := "body:" + sha
	if jsonfield.Present(w.ID) && string(w.ID) != `""` {
		id, err := jsonfield.RequiredID(w.ID, "id")
		if err != nil {
			return n, p.unnormalizable(eventType, "%v", err)
		}
		n.DeliveryID = id
		dedupe = "envelope:" + id
	}

	if w.Data == nil {
		return n, p.unnormalizable(eventType, "no data object")
	}
	var userRaw json.RawMessage
	if w.Data.User != nil {
		userRaw = w.Data.User.ID
	}
	userID, err := jsonfield.RequiredID(userRaw, "data.user.id")
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}

	switch eventType {
	case EventTriggerCreated:
		n.Fact, err = p.trigger(w, userID, dedupe, sha, d.Body)
	default:
		n.Fact, err = p.credit(w, userID, sha, d.Body)
	}
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}
	return n, nil
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("reward: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}

// trigger maps trigger_event.created: a fact about the user, deduplicated
// by the envelope id.
func (p *Provider) trigger(w wireEnvelope, userID, dedupe, sha string, body []byte) (aggregate.Fact, error) {
	attrs := make(map[string]string, 2)
	if t := w.Data.Trigger; t != nil && jsonfield.Present(t.ID) {
		id, err := jsonfield.RequiredID(t.ID, "data.trigger.id")
		if err != nil {
			return aggregate.Fact{}, err
		}
		attrs["trigger_id"] = id
	}
	_, value, ok, err := jsonfield.Decimal(w.Data.Value, "data.value")
	if err != nil {
		return aggregate.Fact{}, err
	}
	if ok {
		attrs["value"] = value
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	return aggregate.Fact{
		Stream: aggregate.StreamID(aggregate.CategoryUser, p.source, userID),
		Type:   aggregate.TypeEntityEventRecorded,
		Data: aggregate.EntityEventRecorded{
			Source:     p.source,
			Kind:       KindUser,
			EntityID:   userID,
			EventType:  EventTriggerCreated,
			OccurredAt: jsonfield.Time(w.Time, timeLayouts),
			UserID:     userID,
			Attributes: attrs,
			BodySHA256: sha,
			Raw:        body,
		},
		DedupeKey:  dedupe,
		OnConflict: aggregate.Correct,
	}, nil
}

// credit maps balance.credit_points_issued: points credited to the user,
// deduplicated by the transaction, whatever envelope carried it.
func (p *Provider) credit(w wireEnvelope, userID, sha string, body []byte) (aggregate.Fact, error) {
	tx := w.Data.Transaction
	if tx == nil {
		return aggregate.Fact{}, fmt.Errorf("no data.transaction object")
	}
	txID, err := jsonfield.RequiredID(tx.ID, "data.transaction.id")
	if err != nil {
		return aggregate.Fact{}, err
	}
	points, _, ok, err := jsonfield.Decimal(tx.Amount, "data.transaction.amount")
	if err != nil {
		return aggregate.Fact{}, err
	}
	if !ok {
		return aggregate.Fact{}, fmt.Errorf("no data.transaction.amount")
	}
	if points.IsNegative() {
		return aggregate.Fact{}, fmt.Errorf("data.transaction.amount %s is negative: an issued credit is not a debit", points)
	}
	return aggregate.Fact{
		Stream: aggregate.StreamID(aggregate.CategoryUser, p.source, userID),
		Type:   aggregate.TypeUserPointsCredited,
		Data: aggregate.PointsCredited{
			Source:        p.source,
			UserID:        userID,
			BalanceSource: p.balanceSource,
			TransactionID: txID,
			Points:        points,
			OccurredAt:    jsonfield.Time(w.Time, timeLayouts),
			BodySHA256:    sha,
			Raw:           body,
		},
		DedupeKey:  "credit:" + txID,
		OnConflict: aggregate.Correct,
	}, nil
}

// timeLayouts are the timestamp forms accepted: RFC 3339 (what Reward
// documents: "2024-12-14T15:29:18.821Z") and, leniently, a zoneless time
// with up to nine fraction digits, read as UTC.
var timeLayouts = jsonfield.RFC3339OrLocal
