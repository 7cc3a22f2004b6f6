package main

import (
	"context"
	"fmt"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/projections"
)

// quarantine is api.Quarantine over the log and the webhook handler: the
// records are read from each source's quarantine stream, and re-processing
// runs them through the handler's current decoders, appending.
type quarantine struct {
	store eventstore.Store
	hooks *webhook.Handler
}

var _ api.Quarantine = quarantine{}

func (q quarantine) Quarantined(ctx context.Context, source string, from uint64, limit int) ([]api.QuarantineRecord, error) {
	evs, err := q.store.ReadStream(ctx, aggregate.QuarantineStream(source), from, limit)
	if err != nil {
		return nil, fmt.Errorf("quarantine of %s: %w", source, err)
	}
	out := make([]api.QuarantineRecord, 0, len(evs))
	for _, e := range evs {
		r := api.QuarantineRecord{Revision: e.Revision, Position: e.Position.Commit}
		var err error
		if r.Quarantined, err = eventcodec.Quarantined(e.Event); err == nil {
			r.Raw, err = eventcodec.RawBody(e.Event)
		}
		if err != nil {
			return nil, fmt.Errorf("quarantine of %s: event at %v: %w", source, e.Position, err)
		}
		if m, err := eventcodec.Metadata(e.Event); err == nil {
			r.ReceivedAt = m.ReceivedAt
		}
		out = append(out, r)
	}
	return out, nil
}

func (q quarantine) Reprocess(ctx context.Context, source string, position uint64, limit int) ([]api.Reprocessed, bool, error) {
	stream := aggregate.QuarantineStream(source)
	var todo []eventstore.RecordedEvent
	more := false
	if position == 0 {
		evs, err := q.store.ReadStream(ctx, stream, 0, limit+1)
		if err != nil {
			return nil, false, fmt.Errorf("quarantine of %s: %w", source, err)
		}
		if more = len(evs) > limit; more {
			evs = evs[:limit]
		}
		todo = evs
	} else {
		for from := uint64(0); ; {
			evs, err := q.store.ReadStream(ctx, stream, from, 1000)
			if err != nil {
				return nil, false, fmt.Errorf("quarantine of %s: %w", source, err)
			}
			for _, e := range evs {
				if e.Position.Commit == position {
					todo = append(todo, e)
				}
			}
			if len(todo) > 0 || len(evs) < 1000 {
				break
			}
			from = evs[len(evs)-1].Revision + 1
		}
		if len(todo) == 0 {
			return nil, false, fmt.Errorf("no quarantined delivery of %s at %d: %w", source, position, projections.ErrNotFound)
		}
	}
	out := make([]api.Reprocessed, 0, len(todo))
	for _, e := range todo {
		r, err := q.hooks.Reprocess(ctx, e)
		if err != nil {
			return nil, false, err
		}
		out = append(out, api.Reprocessed{QuarantinedPosition: e.Position.Commit, Outcome: r.Outcome, Stream: r.Stream,
			Position: r.Position.Commit, EventType: r.EventType, Reason: r.Reason})
	}
	return out, more, nil
}
