package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/projections"
)

// statusTable is the one place an error from the read side becomes a gRPC
// status. Rows are tried in order with errors.Is, so an error wrapped with %w
// (at any depth) matches its sentinel; an error no row matches is Internal.
// The message is the row's, never the error's text, which may carry
// internals (paths, keys, driver errors). It is never modified.
var statusTable = [...]struct {
	err  error
	code codes.Code
	msg  string
}{
	{projections.ErrNotFound, codes.NotFound, "not found"},
	{projections.ErrBehind, codes.Unavailable, "the read models have not caught up to min_position yet; retry later"},
	{projections.ErrBadPageToken, codes.InvalidArgument, "invalid page_token"},
	{projections.ErrBadQuery, codes.InvalidArgument, "invalid query"},
	{projections.ErrUnknownProjection, codes.InvalidArgument, "unknown projection"},
	{projections.ErrBusy, codes.Aborted, "another audit or rebuild is running; retry when it is done"},
	{projections.ErrAheadOfLog, codes.FailedPrecondition, "the read models are ahead of the log; rebuild every read model"},
	{ErrBackupUnsupported, codes.FailedPrecondition, "the log is not the embedded store: back it up with its own tools (README: Operating receiptd)"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
	{context.Canceled, codes.Canceled, "canceled"},
}

// toStatus returns the gRPC status error for err, which op (the RPC name)
// got while reading subject (such as `receipt "x" of source "reewild"`).
// Internal errors are logged with their full text; the caller sees only op
// and "internal error".
func toStatus(ctx context.Context, log *slog.Logger, op, subject string, err error) error {
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return status.Error(row.code, fmt.Sprintf("%s: %s: %s", op, subject, row.msg))
		}
	}
	log.ErrorContext(ctx, "api: internal error", "op", op, "subject", subject, "err", err)
	return status.Error(codes.Internal, op+": internal error")
}
