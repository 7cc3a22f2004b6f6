package projections

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
)

// History reads the events behind a view from the log itself, not from
// the read models: what an auditor asks for when a view must be explained.
type History struct {
	store eventstore.Store
}

// NewHistory returns a History over store.
func NewHistory(store eventstore.Store) *History { return &History{store: store} }

// HistoryEvent is one event of a stream as the log holds it: where it is,
// how it arrived, and what it states.
type HistoryEvent struct {
	Position eventstore.Position
	// Revision is the event's number in its stream, from 0.
	Revision uint64
	// ID is the event id; Type the receiptd event type
	// ("receipt.stage_recorded.v1").
	ID, Type   string
	RecordedAt time.Time
	Meta       EventMeta

	// For a receipt stage event (zero otherwise): the stage, the
	// provider's time of it, the user it names, and for AWARDED the points
	// and transaction, for FAILED the failure.
	Stage         aggregate.Stage
	OccurredAt    *time.Time
	UserID        string
	Points        *decimal.Decimal
	TransactionID string
	Failure       *aggregate.Failure
}

// ReceiptEvents lists the events of a receipt's stream in the order they
// were appended, a page at a time. pageToken is "" for the first page or a
// token this method returned for the same receipt. ErrNotFound if the log
// holds no event of the receipt.
func (h *History) ReceiptEvents(ctx context.Context, source, receiptID string, pageSize int, pageToken string) ([]HistoryEvent, string, error) {
	stream := aggregate.StreamID(aggregate.CategoryReceipt, source, receiptID)
	prefix := append(key(source, receiptID), 0)
	var from uint64
	cursor, err := decodePageToken(pageSize, pageToken, prefix)
	switch {
	case err != nil:
	case cursor != nil && len(cursor) != len(prefix)+8:
		err = ErrBadPageToken
	case cursor != nil:
		from = binary.BigEndian.Uint64(cursor[len(prefix):])
	}
	if err != nil {
		return nil, "", fmt.Errorf("projections: events of receipt %s/%s: %w", source, receiptID, err)
	}
	read, err := h.store.ReadStream(ctx, stream, from, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("projections: events of receipt %s/%s: %w", source, receiptID, err)
	}
	if len(read) == 0 && from == 0 {
		return nil, "", fmt.Errorf("projections: events of receipt %s/%s: %w", source, receiptID, ErrNotFound)
	}
	var next string
	if len(read) > pageSize {
		read = read[:pageSize]
		next = base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(prefix, read[len(read)-1].Revision+1))
	}
	out := make([]HistoryEvent, 0, len(read))
	for _, e := range read {
		out = append(out, historyEvent(e))
	}
	return out, next, nil
}

// historyEvent describes a recorded event; what it cannot decode it leaves
// out rather than fail the whole history.
func historyEvent(e eventstore.RecordedEvent) HistoryEvent {
	h := HistoryEvent{
		Position: e.Position, Revision: e.Revision, ID: e.ID, Type: e.Type,
		RecordedAt: e.RecordedAt, Meta: eventMeta(e),
	}
	if eventcodec.Kind(e.Type) != aggregate.TypeReceiptStageRecorded {
		return h
	}
	f, err := eventcodec.StageRecorded(e.Event)
	if err != nil {
		return h
	}
	h.Stage, h.OccurredAt, h.UserID, h.Failure = f.Stage, f.OccurredAt, f.UserID, f.Failure
	if h.Meta.BodySHA256 == "" {
		h.Meta.BodySHA256 = f.BodySHA256
	}
	if f.Award != nil {
		p := f.Award.Points
		h.Points, h.TransactionID = &p, f.Award.TransactionID
	}
	return h
}
