package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
)

// Reprocessed is what became of one quarantined delivery run through the
// current decoders by Reprocess.
type Reprocessed struct {
	// Outcome is "accepted" (a new event was appended), "duplicate" (the
	// fact is already in its stream, from an earlier re-process or a
	// later, normalizable delivery) or "quarantined" (it still cannot be
	// normalized, or it is refused as a new delivery would be: its
	// signature claimed for another stream or body, or its Reject slot
	// taken; Reason says why). Nothing is appended for the last two.
	Outcome string
	// Stream the fact belongs to, and the position of its event (the
	// appended one, or the one it duplicates).
	Stream   string
	Position eventstore.Position
	// EventType is the provider's event type, as the decoder read it.
	EventType string
	// Reason is why it still cannot be normalized.
	Reason string
}

// ErrNotQuarantined: Reprocess was given an event that is not a quarantined
// delivery of a configured source.
var ErrNotQuarantined = errors.New("webhook: not a quarantined delivery of a configured source")

// Reprocess runs a quarantined delivery (an event of a quarantine stream,
// as the log holds it) through its source's current decoder. When it now
// normalizes, the fact is decided and appended to its stream like a new
// delivery, with the metadata the delivery arrived with (received time,
// verification scheme and key id: its signature was verified when it was
// received and is not checked again); the quarantine event stays in the log
// untouched, so the log is only ever appended to. Re-processing twice is a
// duplicate the second time. A delivery that still cannot be normalized
// stays quarantined: nothing is appended and Reprocessed.Reason says why.
func (h *Handler) Reprocess(ctx context.Context, e eventstore.RecordedEvent) (Reprocessed, error) {
	if eventcodec.Kind(e.Type) != aggregate.TypeDeliveryQuarantined {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess %s event at %v: %w", e.Type, e.Position, ErrNotQuarantined)
	}
	q, err := eventcodec.Quarantined(e.Event)
	if err != nil {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess event at %v: %w", e.Position, err)
	}
	meta, err := eventcodec.Metadata(e.Event)
	if err != nil {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess event at %v: %w", e.Position, err)
	}
	raw, forgotten, err := eventcodec.OpenRawBody(ctx, h.keys, e.Event)
	if err != nil {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess event at %v: %w", e.Position, err)
	}
	src, ok := h.sources[q.Source]
	if !ok || e.Stream != aggregate.QuarantineStream(q.Source) {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess event at %v of source %q: %w", e.Position, q.Source, ErrNotQuarantined)
	}
	if forgotten {
		// Its subject was forgotten: nothing is left to re-process.
		return Reprocessed{
			Outcome: outcomeQuarantined.info().label, Reason: "the delivery's subject was forgotten: its body is gone",
			EventType: q.ProviderEventType, Stream: e.Stream, Position: e.Position,
		}, nil
	}
	d := Delivery{
		Body:         raw,
		BodySHA256:   q.BodySHA256,
		ReceivedAt:   meta.ReceivedAt,
		Verification: Verification{Scheme: meta.Scheme, KeyID: meta.KeyID, DeliveryID: meta.DeliveryID},
	}
	n, err := src.provider.Normalize(d)
	if err == nil {
		err = checkNormalized(src, n)
	}
	out := Reprocessed{EventType: cmp.Or(truncate(n.EventType, maxEventTypeLen), q.ProviderEventType)}
	if err != nil {
		out.Outcome, out.Reason, out.Stream, out.Position = outcomeQuarantined.info().label, truncate(err.Error(), maxReasonLen), e.Stream, e.Position
		return out, nil
	}
	f := n.Fact
	a, err := h.record(ctx, n, aggregate.Metadata{
		Source:            src.name,
		ProviderEventType: out.EventType,
		DeliveryID:        truncate(cmp.Or(n.DeliveryID, meta.DeliveryID), maxDeliveryIDLen),
		ReceivedAt:        meta.ReceivedAt,
		Scheme:            meta.Scheme,
		KeyID:             meta.KeyID,
		BodySHA256:        q.BodySHA256,
	}, raw, h.sealing(src, d, n))
	if errors.Is(err, ErrUnauthenticated) || errors.Is(err, aggregate.ErrConflict) {
		// Refused as a new delivery would be (its signature claimed for
		// another stream or body, or a Reject slot taken): it stays
		// quarantined, and the batch goes on.
		out.Outcome, out.Reason, out.Stream, out.Position = outcomeQuarantined.info().label, truncate(err.Error(), maxReasonLen), e.Stream, e.Position
		return out, nil
	}
	if err != nil {
		return Reprocessed{}, fmt.Errorf("webhook: reprocess delivery at %v into %q: %w", e.Position, f.Stream, err)
	}
	out.Stream, out.Position = f.Stream, a.position
	out.Outcome = outcomeAccepted.info().label
	if a.duplicate {
		out.Outcome = outcomeDuplicate.info().label
	}
	return out, nil
}
