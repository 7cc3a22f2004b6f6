package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
)

// QuarantineRecord is one delivery of a quarantine stream, as Quarantined
// reads it.
type QuarantineRecord struct {
	// Revision is the event's in the quarantine stream; Position its
	// commit position in the log.
	Revision, Position uint64
	// ReceivedAt is when the delivery arrived; zero if the event's
	// metadata cannot be read.
	ReceivedAt time.Time
	// Quarantined holds the source, provider event type, reason, body
	// SHA-256 and the raw body as received.
	aggregate.Quarantined
	// Forgotten: the raw body was sealed under the data key of a subject
	// since forgotten; Raw is nil.
	Forgotten bool
}

// ReprocessedDelivery is what ReprocessQuarantined did to one quarantined
// delivery.
type ReprocessedDelivery struct {
	// QuarantinedPosition is the commit position of the quarantine event.
	QuarantinedPosition uint64
	Reprocessed
}

// quarantineScan is how many events of a quarantine stream
// ReprocessQuarantined reads at a time while it looks for a position.
const quarantineScan = 1000

// Quarantined returns up to limit deliveries of source's quarantine stream
// (aggregate.QuarantineStream), from stream revision from on, oldest first,
// with their raw bodies.
func (h *Handler) Quarantined(ctx context.Context, source string, from uint64, limit int) ([]QuarantineRecord, error) {
	evs, err := h.store.ReadStream(ctx, aggregate.QuarantineStream(source), from, limit)
	if err != nil {
		return nil, fmt.Errorf("webhook: quarantine of %s: %w", source, err)
	}
	out := make([]QuarantineRecord, 0, len(evs))
	for _, e := range evs {
		r := QuarantineRecord{Revision: e.Revision, Position: e.Position.Commit}
		var err error
		if r.Quarantined, err = eventcodec.Quarantined(e.Event); err == nil {
			r.Raw, r.Forgotten, err = eventcodec.OpenRawBody(ctx, h.keys, e.Event)
		}
		if err != nil {
			return nil, fmt.Errorf("webhook: quarantine of %s: event at %v: %w", source, e.Position, err)
		}
		if m, err := eventcodec.Metadata(e.Event); err == nil {
			r.ReceivedAt = m.ReceivedAt
		}
		out = append(out, r)
	}
	return out, nil
}

// ReprocessQuarantined runs source's quarantined delivery at commit
// position position, or (position 0) its first limit ones, through
// Reprocess; more reports whether the stream holds others after those.
// A position no delivery of the stream is at is ErrNotQuarantined. It stops
// at the first error.
func (h *Handler) ReprocessQuarantined(ctx context.Context, source string, position uint64, limit int) (results []ReprocessedDelivery, more bool, err error) {
	todo, more, err := h.quarantinedAt(ctx, source, position, limit)
	if err != nil {
		return nil, false, err
	}
	results = make([]ReprocessedDelivery, 0, len(todo))
	for _, e := range todo {
		r, err := h.Reprocess(ctx, e)
		if err != nil {
			return nil, false, err
		}
		results = append(results, ReprocessedDelivery{QuarantinedPosition: e.Position.Commit, Reprocessed: r})
	}
	return results, more, nil
}

// quarantinedAt reads what ReprocessQuarantined re-processes: the first
// limit events of source's quarantine stream (position 0), or the one at
// position, found by reading the stream from its start until an event's
// position reaches it (positions grow with revisions).
func (h *Handler) quarantinedAt(ctx context.Context, source string, position uint64, limit int) (todo []eventstore.RecordedEvent, more bool, err error) {
	stream := aggregate.QuarantineStream(source)
	if position == 0 {
		evs, err := h.store.ReadStream(ctx, stream, 0, limit+1)
		if err != nil {
			return nil, false, fmt.Errorf("webhook: quarantine of %s: %w", source, err)
		}
		if more = len(evs) > limit; more {
			evs = evs[:limit]
		}
		return evs, more, nil
	}
scan:
	for from := uint64(0); ; {
		evs, err := h.store.ReadStream(ctx, stream, from, quarantineScan)
		if err != nil {
			return nil, false, fmt.Errorf("webhook: quarantine of %s: %w", source, err)
		}
		for _, e := range evs {
			if e.Position.Commit > position {
				break scan
			}
			if e.Position.Commit == position {
				todo = append(todo, e)
			}
		}
		if len(evs) < quarantineScan {
			break
		}
		from = evs[len(evs)-1].Revision + 1
	}
	if len(todo) == 0 {
		return nil, false, fmt.Errorf("webhook: no quarantined delivery of %s at %d: %w", source, position, ErrNotQuarantined)
	}
	return todo, false, nil
}
