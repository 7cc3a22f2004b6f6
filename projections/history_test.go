package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

func TestHistoryReceiptEvents(t *testing.T) {
	l := newLogStore(t)
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	l.stage(aggregate.StageRecorded{ReceiptID: "r1", UserID: "u1", Stage: aggregate.StageExtracted, OccurredAt: &at, BodySHA256: "h1"})
	l.stage(aggregate.StageRecorded{ReceiptID: "other", UserID: "u1", Stage: aggregate.StageUploaded})
	l.stage(aggregate.StageRecorded{ReceiptID: "r1", UserID: "u1", Stage: aggregate.StageAwarded, Award: &aggregate.Award{TransactionID: "tx", Points: decimal.RequireFromString("74.28")}})
	l.stage(aggregate.StageRecorded{ReceiptID: "r1", UserID: "u1", Stage: aggregate.StageFailed, Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}})
	h := projections.NewHistory(l.store)
	ctx := context.Background()

	var got []projections.HistoryEvent
	token := ""
	pages := 0
	for {
		page, next, err := h.ReceiptEvents(ctx, "reewild", "r1", 2, token)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		pages++
		if next == "" {
			break
		}
		token = next
	}
	if len(got) != 3 || pages != 2 {
		t.Fatalf("%d events in %d pages: %+v", len(got), pages, got)
	}
	first := got[0]
	if first.Position.Commit != 1 || first.Revision != 0 || first.Type != aggregate.TypeReceiptStageRecorded || first.Stage != aggregate.StageExtracted ||
		first.OccurredAt == nil || !first.OccurredAt.Equal(at) || first.UserID != "u1" {
		t.Errorf("first event %+v", first)
	}
	if m := first.Meta; m.ProviderEventType != "receipt.extracted" || m.Scheme != "hmac-sha256" || m.KeyID == "" || m.BodySHA256 != "body-1" || m.ReceivedAt.IsZero() || m.DeliveryID != "dlv-1" {
		t.Errorf("first event's metadata %+v", m)
	}
	if a := got[1]; a.Position.Commit != 3 || a.Points == nil || a.Points.String() != "74.28" || a.TransactionID != "tx" {
		t.Errorf("award %+v", a)
	}
	if f := got[2]; f.Failure == nil || f.Failure.Name != "FAILED_VALIDATE" {
		t.Errorf("failure %+v", f)
	}
	if _, _, err := h.ReceiptEvents(ctx, "reewild", "nope", 10, ""); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("unknown receipt: %v", err)
	}
	if _, _, err := h.ReceiptEvents(ctx, "reewild", "r1", 10, "xx"); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("bad token: %v", err)
	}
	_, next, _ := h.ReceiptEvents(ctx, "reewild", "r1", 1, "")
	if _, _, err := h.ReceiptEvents(ctx, "reewild", "other", 1, next); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("another receipt's token: %v", err)
	}
}
