package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// statusTable is the one place an error the API gets becomes a gRPC status.
// Rows are tried in order with errors.Is, so an error wrapped with %w (at any
// depth) matches its sentinel; an error no row matches is Internal. The
// message is the row's, never the error's text, which may carry internals
// (paths, keys, driver errors). It is never modified.
//
// Every exported sentinel of the packages the API fronts (projections,
// eventstore, aggregate, handlers/webhook for the quarantine, privacy and
// eventcodec for personal data, feed) has a row, those answered Internal on purpose
// included (last): TestStatusTableKnowsEverySentinel parses those packages
// and fails on a sentinel without one.
var statusTable = [...]struct {
	err  error
	code codes.Code
	msg  string
}{
	// The read models.
	{projections.ErrNotFound, codes.NotFound, "not found"},
	{projections.ErrBehind, codes.Unavailable, "the read models have not caught up to min_position yet; retry later"},
	{projections.ErrBadPageToken, codes.InvalidArgument, "invalid page_token"},
	{projections.ErrBadQuery, codes.InvalidArgument, "invalid query"},
	{projections.ErrUnknownProjection, codes.InvalidArgument, "unknown projection"},
	{projections.ErrBusy, codes.Aborted, "another audit or rebuild is running; retry when it is done"},
	{projections.ErrAheadOfLog, codes.FailedPrecondition, "the read models are ahead of the log; rebuild every read model"},
	// The log, which ListReceiptEvents and the quarantine read directly.
	{eventstore.ErrUnavailable, codes.Unavailable, "the event log is unavailable; retry later"},
	{eventstore.ErrClosed, codes.Unavailable, "the event log is closed; retry later"},
	{eventstore.ErrWrongRevision, codes.Aborted, "the stream was written concurrently; retry"},
	// The quarantine (ingest's).
	{webhook.ErrNotQuarantined, codes.NotFound, "not found"},
	// The backup (this package's).
	{ErrBackupUnsupported, codes.FailedPrecondition, "the log is not the embedded store: back it up with its own tools (README: Operating receiptd)"},
	// Privacy (this package's and the key store's).
	{ErrPrivacyNotConfigured, codes.FailedPrecondition, "privacy is not configured: personal data is stored in the clear and cannot be forgotten (README: Personal data)"},
	{privacy.ErrBadSubject, codes.InvalidArgument, "invalid subject"},
	{privacy.ErrClosed, codes.Unavailable, "the key store is closed; retry later"},
	// The feed and its destinations.
	{feed.ErrUnknownDestination, codes.NotFound, "no such destination"},
	{feed.ErrClosed, codes.Unavailable, "the destinations' progress file is closed; retry later"},
	// The caller's context.
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
	{context.Canceled, codes.Canceled, "canceled"},
	// Internal on purpose: none of these is the caller's doing, and each
	// is logged with its full text.
	{projections.ErrLocked, codes.Internal, ""},       // Open only: a serving process holds the file
	{eventstore.ErrInvalid, codes.Internal, ""},       // the API validates what it asks the log
	{eventstore.ErrStreamDeleted, codes.Internal, ""}, // only the privacy key streams are ever deleted, and privacy maps it
	{aggregate.ErrBadEvent, codes.Internal, ""},       // a stored event that cannot be decoded
	{aggregate.ErrBadStreamID, codes.Internal, ""},    // a stream name the API built wrong
	{aggregate.ErrUnknownEvent, codes.Internal, ""},   // ingest: a re-processed delivery stays quarantined instead
	{aggregate.ErrUnnormalizable, codes.Internal, ""}, // ingest: likewise
	{aggregate.ErrConflict, codes.Internal, ""},       // ingest: likewise
	{webhook.ErrUnauthenticated, codes.Internal, ""},  // ingest: likewise
	{webhook.ErrNotReady, codes.Internal, ""},         // ingest's health check only
	{privacy.ErrForgotten, codes.Internal, ""},        // readers show it as forgotten; never an answer
	{privacy.ErrUnknownKey, codes.Internal, ""},       // a key store that is not this log's, or lost
	{privacy.ErrNoKEK, codes.Internal, ""},            // a key-encryption key missing from the config
	{privacy.ErrBadKEK, codes.Internal, ""},           // refused at start
	{privacy.ErrTampered, codes.Internal, ""},         // a sealed value or key that does not authenticate
	{eventcodec.ErrSealed, codes.Internal, ""},        // a reader that should have opened the body
	{feed.ErrBadEvent, codes.Internal, ""},            // a stored feed event that cannot be decoded
}

// toStatus returns the gRPC status error for err, which op (the RPC name)
// got while reading subject (such as `receipt "x" of source "reewild"`).
// Internal errors are logged with their full text; the caller sees only op
// and "internal error".
func toStatus(ctx context.Context, log *slog.Logger, op, subject string, err error) error {
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			if row.code == codes.Internal {
				break
			}
			return status.Error(row.code, fmt.Sprintf("%s: %s: %s", op, subject, row.msg))
		}
	}
	log.ErrorContext(ctx, "api: internal error", "op", op, "subject", subject, "err", err)
	return status.Error(codes.Internal, op+": internal error")
}
