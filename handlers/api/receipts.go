package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// Stuck receipts (issue 16): a receipt still in progress after its
// source's whole retry window is overdue. Whether it is depends on the
// time of the read, so the read models hold no such flag: the services
// take a clock and each source's window (WithOverdue) and add the overdue
// anomaly to the views they answer, and ListReceipts lists the overdue
// receipts from the read models' index of receipts in progress.

// InProgressReader lists a source's receipts in progress, the longest
// waiting first, first recorded before before (all if zero); implemented
// by *projections.DB. ListReceipts answers UNIMPLEMENTED over a Reader
// without it.
type InProgressReader interface {
	InProgress(ctx context.Context, source string, before time.Time, pageSize int, pageToken string) ([]aggregate.ReceiptView, string, error)
}

// DefaultOverdueAfter is the retry window of a source whose config does
// not say (aggregate.DefaultOverdueAfter: Reewild's 23h5m).
const DefaultOverdueAfter = aggregate.DefaultOverdueAfter

// Overdue is how the services tell an overdue receipt: Now is the clock
// (time.Now in receiptd; a fake in tests) and After each source's retry
// window (aggregate.DefaultOverdueAfter unless the source's overdue_after
// says otherwise; zero or less: never overdue).
type Overdue struct {
	Now   func() time.Time
	After func(source string) time.Duration
}

// WithOverdue makes the ReceiptService and the StatsService report
// overdue receipts by o: the overdue anomaly on the receipts they answer,
// ListReceipts with status "overdue", and SourceStats.overdue. Without
// it, nothing is overdue and ListReceipts lists only "in_progress".
func WithOverdue(o Overdue) Option {
	return func(opts *options) {
		if o.Now != nil && o.After != nil {
			opts.overdue = &o
		}
	}
}

// markOverdue adds the overdue anomaly to v if it is overdue now.
func (o *options) markOverdue(v *aggregate.ReceiptView) {
	if o.overdue != nil {
		v.MarkOverdue(o.overdue.Now(), o.overdue.After(v.Source))
	}
}

// receiptToProtoNow converts a view after adding the overdue anomaly.
func (o *options) receiptToProtoNow(v aggregate.ReceiptView) (*receiptdv1.Receipt, error) {
	o.markOverdue(&v)
	return receiptToProto(v)
}

// The values of ListReceiptsRequest.status.
const (
	listStatusOverdue    = "overdue"
	listStatusInProgress = "in_progress"
)

// ListReceipts implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) ListReceipts(ctx context.Context, req *receiptdv1.ListReceiptsRequest) (*receiptdv1.ListReceiptsResponse, error) {
	const op = "ListReceipts"
	st := strings.ToLower(req.GetStatus())
	var check error
	switch st {
	case listStatusOverdue, listStatusInProgress:
	case "":
		check = status.Errorf(codes.InvalidArgument, "%s: status is required: %q or %q", op, listStatusOverdue, listStatusInProgress)
	default:
		check = status.Errorf(codes.InvalidArgument, "%s: status %q: want %q or %q", op, req.GetStatus(), listStatusOverdue, listStatusInProgress)
	}
	source, size, err := s.listArgs(op, req, check)
	if err != nil {
		return nil, err
	}
	r, ok := s.reader.(InProgressReader)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "%s: the read models do not index receipts in progress", op)
	}
	var before time.Time
	var now time.Time
	if st == listStatusOverdue {
		w := time.Duration(0)
		if s.overdue != nil {
			now = s.overdue.Now()
			w = s.overdue.After(source)
		}
		if w <= 0 {
			// Nothing is overdue for this source.
			return &receiptdv1.ListReceiptsResponse{Receipts: []*receiptdv1.Receipt{}}, s.waitStatus(ctx, op, source, req.GetMinPosition())
		}
		before = now.Add(-w)
	}
	receipts, next, err := list(ctx, &s.service, op, fmt.Sprintf("%s receipts of source %q", st, source), req.GetMinPosition(),
		func(ctx context.Context) ([]aggregate.ReceiptView, string, error) {
			return r.InProgress(ctx, source, before, size, req.GetPageToken())
		}, s.receiptToProtoNow)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.ListReceiptsResponse{Receipts: receipts, NextPageToken: next}, nil
}

// waitStatus waits for min_position as a list would, for an answer that
// reads nothing.
func (s *ReceiptService) waitStatus(ctx context.Context, op, source string, minPosition uint64) error {
	if err := s.waitFor(ctx, minPosition); err != nil {
		return toStatus(ctx, s.log, op, fmt.Sprintf("receipts of source %q", source), err)
	}
	return nil
}
