package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// StreamOpenHeader is the response header metadata key a watch sends once
// it is established, before its first message.
const StreamOpenHeader = "receiptd-stream-open"

// errStopping: the server's lifetime ended while a watch was open.
var errStopping = errors.New("api: the server is shutting down")

// WatchReceipt implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) WatchReceipt(req *receiptdv1.WatchReceiptRequest, stream grpc.ServerStreamingServer[receiptdv1.Receipt]) error {
	const op = "WatchReceipt"
	if err := validateID(op, "receipt_id", req.GetReceiptId()); err != nil {
		return err
	}
	source, err := s.source(op, req.GetSource())
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("receipt %q of source %q", req.GetReceiptId(), source)
	return watch(s, stream.Context(), op, subject, req.GetMinPosition(), req.GetAllowMissing(),
		projections.ReceiptKey(source, req.GetReceiptId()),
		func(ctx context.Context) (*receiptdv1.Receipt, error) {
			v, err := s.reader.Receipt(ctx, source, req.GetReceiptId())
			if err != nil {
				return nil, err
			}
			// Another user's receipt reads as a missing one (so, with
			// allow_missing, the watch waits as it would for a receipt
			// not seen yet): its existence does not leak.
			if err := AuthorizeOwner(ctx, v.UserID); err != nil {
				return nil, err
			}
			return s.receiptToProtoNow(v) // overdue as of this read (receipts.go)
		},
		func(r *receiptdv1.Receipt) bool {
			return r.GetStatus() == receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED || r.GetStatus() == receiptdv1.ReceiptStatus_RECEIPT_STATUS_FAILED
		},
		stream.SendHeader, stream.Send)
}

// WatchUser implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) WatchUser(req *receiptdv1.WatchUserRequest, stream grpc.ServerStreamingServer[receiptdv1.Balance]) error {
	const op = "WatchUser"
	if err := validateID(op, "user_id", req.GetUserId()); err != nil {
		return err
	}
	source, err := s.source(op, req.GetSource())
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("balance of user %q of source %q", req.GetUserId(), source)
	return watch(s, stream.Context(), op, subject, req.GetMinPosition(), req.GetAllowMissing(),
		projections.UserKey(source, req.GetUserId()),
		func(ctx context.Context) (*receiptdv1.Balance, error) {
			return s.balance(ctx, source, req.GetUserId())
		},
		func(*receiptdv1.Balance) bool { return false },
		stream.SendHeader, stream.Send)
}

// watch sends read's view, then the view again every time it differs from
// the last one sent, until final says the view is the last, the client
// leaves, or the server's lifetime ends.
//
// It takes a Mark before each read, so the view read holds every change up
// to the Mark, and WaitChange from it wakes for any later change of key: no
// change between two reads is missed, and a view equal to the last sent is
// not sent again. A view that changed several times between two reads is
// sent once, as it is then.
//
// Once the watch is established (the request is valid, min_position is
// applied, and the view exists or allow_missing is set) it sends the
// response header with StreamOpenHeader, so the REST gateway answers 200
// at once rather than at the first message (see NewGateway).
func watch[M proto.Message](s *ReceiptService, ctx context.Context, op, subject string, minPosition uint64, allowMissing bool,
	key projections.Key, read func(context.Context) (M, error), final func(M) bool,
	sendHeader func(metadata.MD) error, send func(M) error,
) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.lifetime, func() { cancel(errStopping) })
	defer stop()

	fail := func(err error) error {
		if errors.Is(context.Cause(ctx), errStopping) {
			return status.Errorf(codes.Unavailable, "%s: %s: the server is shutting down; watch again", op, subject)
		}
		return toStatus(ctx, s.log, op, subject, err)
	}
	if err := s.waitFor(ctx, minPosition); err != nil {
		return fail(err)
	}
	var last M
	sent, open := false, false
	mark := s.reader.Mark()
	for {
		v, err := read(ctx)
		if !open && (err == nil || (errors.Is(err, projections.ErrNotFound) && allowMissing)) {
			if err := sendHeader(metadata.Pairs(StreamOpenHeader, "1")); err != nil {
				return err
			}
			open = true
		}
		switch {
		case errors.Is(err, projections.ErrNotFound) && (allowMissing || sent):
			// Not there (yet): wait for its first event.
		case err != nil:
			return fail(err)
		case !sent || !proto.Equal(v, last):
			if err := send(v); err != nil {
				return err // the client left: its status is the transport's
			}
			last, sent = v, true
			if final(v) {
				return nil
			}
		}
		if mark, err = s.reader.WaitChange(ctx, mark, key); err != nil {
			return fail(err)
		}
	}
}
