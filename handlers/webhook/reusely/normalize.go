package reusely

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// The event types of the seed. Both state the offer's status.
const (
	EventOfferCreated       = "offer.created"
	EventOfferStatusUpdated = "offer.status.updated"
)

// attributes are the data fields copied into EntityEventRecorded.Attributes
// (by the same name) when they are a non-empty string, a number or a
// boolean. Personal data (customer name, e-mail, payout address) and URLs
// stay in the raw body only.
var attributes = []string{
	"status_id",
	"payout_total",
	"payout_currency_symbol",
	"payout_method",
	"expedited_payout_fee",
	"selling_type",
	"buyback_source",
	"offer_created_by",
	"number_of_buyback_items",
	"location_id",
	"location_name",
	"courier",
	"tracking_number",
	"created_at",
}

// Normalize turns a verified Reusely delivery into an
// aggregate.EntityEventRecorded on the offer's stream,
// offer-{source}.{data.box_id}. See the package documentation for the
// field mapping and what is required.
//
// The fact's slot is the signed pair and its policy aggregate.Reject: a
// second, different body under the same (object_id, timestamp) is refused
// with aggregate.ErrConflict (409) rather than recorded, because the
// signature cannot say which of the two Reusely sent.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	env, err := decodeEnvelope(d.Body)
	n := webhook.Normalized{EventType: env.eventType}
	if err != nil {
		return n, p.unnormalizable(env.eventType, "decode body: %v", err)
	}
	if env.eventType == "" {
		return n, p.unnormalizable(env.eventType, "no type string")
	}
	switch env.eventType {
	case EventOfferCreated, EventOfferStatusUpdated:
	default:
		return n, fmt.Errorf("reusely: normalize delivery to %q: event type %.64q: %w", p.source, env.eventType, aggregate.ErrUnknownEvent)
	}
	if env.pairErr != nil {
		return n, p.unnormalizable(env.eventType, "%v", env.pairErr)
	}
	if env.data == nil {
		return n, p.unnormalizable(env.eventType, "no data object")
	}
	boxID, err := jsonfield.RequiredID(env.data["box_id"], "data.box_id")
	if err != nil {
		return n, p.unnormalizable(env.eventType, "%v", err)
	}
	sha := d.BodySHA256
	if sha == "" {
		sum := sha256.Sum256(d.Body)
		sha = hex.EncodeToString(sum[:])
	}

	at := time.Unix(env.pair.unix, 0).UTC()
	rec := aggregate.EntityEventRecorded{
		Source:     p.source,
		Kind:       aggregate.CategoryOffer,
		EntityID:   boxID,
		EventType:  env.eventType,
		OccurredAt: &at,
		BodySHA256: sha,
		Raw:        d.Body,
	}
	if status, ok := jsonfield.String(env.data["status"]); ok && status != "" {
		rec.Status, rec.StatusAt = status, &at
	}
	amount, _, ok, err := jsonfield.Decimal(env.data["payout_amount"], "data.payout_amount")
	if err != nil {
		return n, p.unnormalizable(env.eventType, "%v", err)
	}
	if ok {
		rec.Amount = &amount
	}
	rec.Currency, _ = jsonfield.String(env.data["payout_currency_symbol"])
	rec.Attributes = map[string]string{"object_id": env.pair.objectID}
	for _, name := range attributes {
		if v, ok := attribute(env.data[name]); ok {
			rec.Attributes[name] = v
		}
	}

	slot := env.pair.slot()
	n.Fact = aggregate.Fact{
		Stream:     aggregate.StreamID(aggregate.CategoryOffer, p.source, boxID),
		Type:       aggregate.TypeEntityEventRecorded,
		Data:       rec,
		DedupeKey:  slot + ":" + sha,
		SlotKey:    slot,
		OnConflict: aggregate.Reject,
	}
	n.Claim = env.pair.claim()
	return n, nil
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("reusely: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}
