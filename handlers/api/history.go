package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// ListReceiptEvents implements receiptdv1.ReceiptServiceServer: the events
// of a receipt's stream, from the log.
func (s *ReceiptService) ListReceiptEvents(ctx context.Context, req *receiptdv1.ListReceiptEventsRequest) (*receiptdv1.ListReceiptEventsResponse, error) {
	const op = "ListReceiptEvents"
	source, size, err := s.listArgs(op, req, validateID(op, "receipt_id", req.GetReceiptId()))
	if err != nil {
		return nil, err
	}
	if s.events == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s: this server keeps no event log to read", op)
	}
	events, next, err := list(ctx, &s.service, op, fmt.Sprintf("events of receipt %q of source %q", req.GetReceiptId(), source), req.GetMinPosition(),
		func(ctx context.Context) ([]projections.HistoryEvent, string, error) {
			// A user may read the events of their own receipts only: the
			// owner is the receipt's user in the read models (none for a
			// receipt they do not hold yet, which only a scope may read).
			owner := ""
			switch v, err := s.reader.Receipt(ctx, source, req.GetReceiptId()); {
			case err == nil:
				owner = v.UserID
			case !errors.Is(err, projections.ErrNotFound):
				return nil, "", err
			}
			if err := AuthorizeOwner(ctx, owner); err != nil {
				return nil, "", err
			}
			return s.events.ReceiptEvents(ctx, source, req.GetReceiptId(), size, req.GetPageToken())
		}, historyEventToProto)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.ListReceiptEventsResponse{Events: events, NextPageToken: next}, nil
}

// ListUserLedger implements receiptdv1.ReceiptServiceServer: every change
// to a user's derived points with its running total.
func (s *ReceiptService) ListUserLedger(ctx context.Context, req *receiptdv1.ListUserLedgerRequest) (*receiptdv1.ListUserLedgerResponse, error) {
	const op = "ListUserLedger"
	source, size, err := s.listArgs(op, req, validateID(op, "user_id", req.GetUserId()))
	if err != nil {
		return nil, err
	}
	entries, next, err := list(ctx, &s.service, op, fmt.Sprintf("ledger of user %q of source %q", req.GetUserId(), source), req.GetMinPosition(),
		func(ctx context.Context) ([]projections.LedgerEntry, string, error) {
			return s.reader.Ledger(ctx, source, req.GetUserId(), size, req.GetPageToken())
		}, ledgerEntryToProto)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.ListUserLedgerResponse{Entries: entries, NextPageToken: next}, nil
}
