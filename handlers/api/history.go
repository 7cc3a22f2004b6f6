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
	if err := validateID(op, "receipt_id", req.GetReceiptId()); err != nil {
		return nil, err
	}
	source, err := s.source(op, req.GetSource())
	if err != nil {
		return nil, err
	}
	size, err := resolvePageSize(op, req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if s.events == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s: this server keeps no event log to read", op)
	}
	subject := fmt.Sprintf("events of receipt %q of source %q", req.GetReceiptId(), source)
	if err := s.waitFor(ctx, req.GetMinPosition()); err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	// A user may read the events of their own receipts only: the owner is
	// the receipt's user in the read models (none for a receipt they do
	// not hold yet, which only a scope may read).
	owner := ""
	switch v, err := s.reader.Receipt(ctx, source, req.GetReceiptId()); {
	case err == nil:
		owner = v.UserID
	case !errors.Is(err, projections.ErrNotFound):
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	if err := AuthorizeOwner(ctx, owner); err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	events, next, err := s.events.ReceiptEvents(ctx, source, req.GetReceiptId(), size, req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	resp := &receiptdv1.ListReceiptEventsResponse{
		Events:        make([]*receiptdv1.ReceiptEvent, 0, len(events)),
		NextPageToken: next,
	}
	for _, e := range events {
		out, err := historyEventToProto(e)
		if err != nil {
			return nil, toStatus(ctx, s.log, op, subject, err)
		}
		resp.Events = append(resp.Events, out)
	}
	return resp, nil
}

// ListUserLedger implements receiptdv1.ReceiptServiceServer: every change
// to a user's derived points with its running total.
func (s *ReceiptService) ListUserLedger(ctx context.Context, req *receiptdv1.ListUserLedgerRequest) (*receiptdv1.ListUserLedgerResponse, error) {
	const op = "ListUserLedger"
	if err := validateID(op, "user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	source, err := s.source(op, req.GetSource())
	if err != nil {
		return nil, err
	}
	size, err := resolvePageSize(op, req.GetPageSize())
	if err != nil {
		return nil, err
	}
	subject := fmt.Sprintf("ledger of user %q of source %q", req.GetUserId(), source)
	if err := s.waitFor(ctx, req.GetMinPosition()); err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	entries, next, err := s.reader.Ledger(ctx, source, req.GetUserId(), size, req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	resp := &receiptdv1.ListUserLedgerResponse{
		Entries:       make([]*receiptdv1.LedgerEntry, 0, len(entries)),
		NextPageToken: next,
	}
	for _, e := range entries {
		out, err := ledgerEntryToProto(e)
		if err != nil {
			return nil, toStatus(ctx, s.log, op, subject, err)
		}
		resp.Entries = append(resp.Entries, out)
	}
	return resp, nil
}
