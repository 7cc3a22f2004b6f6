package webhook

import (
	"context"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/privacy"
)

// LogSealer seals the deliveries of a log written before privacy was
// configured, one stored event at a time (receiptd privacy seal, through
// bolt.Rewrite): each delivery about a person is run through its source's
// provider again to find whose it is (SubjectOf), and sealed in place
// under that person's key (eventcodec.SealEvent: same id, type and
// metadata, the clear fields as they were). It is not safe for concurrent
// use.
type LogSealer struct {
	ctx       context.Context
	keys      Keys
	providers map[string]Provider
	stats     LogSealStats
}

// LogSealStats counts what a LogSealer did.
type LogSealStats struct {
	// Events seen, and of them: sealed now, sealed before, deliveries
	// about no one (stored in the clear), and deliveries of a source the
	// config no longer has (left as they are).
	Events, Sealed, AlreadySealed, NoSubject, NoSource int
	// Subjects sealed for.
	Subjects map[privacy.Subject]bool
}

// NewLogSealer returns a LogSealer over the configured providers; ctx
// bounds the key store's work.
func NewLogSealer(ctx context.Context, keys Keys, providers []Provider) *LogSealer {
	s := &LogSealer{ctx: ctx, keys: keys, providers: map[string]Provider{}, stats: LogSealStats{Subjects: map[privacy.Subject]bool{}}}
	for _, p := range providers {
		s.providers[p.Source()] = p
	}
	return s
}

// Stats returns the counts so far.
func (s *LogSealer) Stats() LogSealStats { return s.stats }

// Seal returns e sealed, and true, if it is a delivery about a person not
// sealed yet; otherwise false. It has the signature of bolt.RewriteFunc.
func (s *LogSealer) Seal(e eventstore.RecordedEvent) (aggregate.Event, bool, error) {
	s.stats.Events++
	kind := eventcodec.Kind(e.Type)
	switch kind {
	case aggregate.TypeReceiptStageRecorded, aggregate.TypeUserEnrolled, aggregate.TypeDeliveryQuarantined,
		aggregate.TypeUserPointsCredited, aggregate.TypeEntityEventRecorded:
	default:
		return aggregate.Event{}, false, nil
	}
	if eventcodec.IsSealed(e.Event) {
		s.stats.AlreadySealed++
		return aggregate.Event{}, false, nil
	}
	meta, err := eventcodec.Metadata(e.Event)
	if err != nil {
		return aggregate.Event{}, false, err
	}
	p, ok := s.providers[meta.Source]
	if !ok {
		s.stats.NoSource++
		return aggregate.Event{}, false, nil
	}
	raw, err := eventcodec.RawBody(e.Event)
	if err != nil {
		return aggregate.Event{}, false, err
	}
	d := Delivery{Body: raw, BodySHA256: meta.BodySHA256, ReceivedAt: meta.ReceivedAt,
		Verification: Verification{Scheme: meta.Scheme, KeyID: meta.KeyID, DeliveryID: meta.DeliveryID}}
	var n Normalized
	if kind != aggregate.TypeDeliveryQuarantined {
		if n, err = p.Normalize(d); err != nil {
			n = Normalized{} // the subject from the body alone, as for a quarantined delivery
		}
	}
	subject, attrs, ok := SubjectOf(s.keys, meta.Source, p, d, n)
	if !ok {
		s.stats.NoSubject++
		return aggregate.Event{}, false, nil
	}
	key, err := s.keys.SealKey(s.ctx, subject)
	if err != nil {
		return aggregate.Event{}, false, err
	}
	sealed, err := eventcodec.SealEvent(e.Event, eventcodec.Sealing{Key: key, Attributes: attrs})
	if err != nil {
		return aggregate.Event{}, false, err
	}
	s.stats.Sealed++
	s.stats.Subjects[subject] = true
	return sealed, true, nil
}
