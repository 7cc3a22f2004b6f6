package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// outcome is what became of one delivery. Every outcome has exactly one HTTP
// status, one metric label and one log level: outcomes is the table, and the
// only place a status is chosen.
type outcome int

const (
	outcomeAccepted outcome = iota
	outcomeDuplicate
	outcomeQuarantined
	outcomeUnknownSource
	outcomeRateLimited
	outcomeMethodNotAllowed
	outcomeUnsupportedMediaType
	outcomeTooLarge
	outcomeBadSignature
	outcomeMalformed
	outcomeConflict
	outcomeStoreUnavailable
	outcomeInternal
	numOutcomes
)

type outcomeInfo struct {
	label  string // receiptd_webhook_deliveries_total{outcome}
	status int
	level  slog.Level
	// message is the error the client sees; empty for a 200.
	message string
}

var outcomes = [numOutcomes]outcomeInfo{
	outcomeAccepted:             {"accepted", http.StatusOK, slog.LevelDebug, ""},
	outcomeDuplicate:            {"duplicate", http.StatusOK, slog.LevelDebug, ""},
	outcomeQuarantined:          {"quarantined", http.StatusOK, slog.LevelWarn, ""},
	outcomeUnknownSource:        {"unknown_source", http.StatusNotFound, slog.LevelWarn, "unknown source"},
	outcomeRateLimited:          {"rate_limited", http.StatusTooManyRequests, slog.LevelDebug, "too many deliveries for this source; retry later"},
	outcomeMethodNotAllowed:     {"method_not_allowed", http.StatusMethodNotAllowed, slog.LevelWarn, "method not allowed: use POST"},
	outcomeUnsupportedMediaType: {"unsupported_media_type", http.StatusUnsupportedMediaType, slog.LevelWarn, "content type must be application/json"},
	outcomeTooLarge:             {"too_large", http.StatusRequestEntityTooLarge, slog.LevelWarn, "body too large"},
	outcomeBadSignature:         {"bad_signature", http.StatusUnauthorized, slog.LevelWarn, "unauthenticated"},
	outcomeMalformed:            {"malformed", http.StatusBadRequest, slog.LevelWarn, "body is not valid JSON"},
	outcomeConflict:             {"conflict", http.StatusConflict, slog.LevelWarn, "delivery conflicts with one already recorded"},
	outcomeStoreUnavailable:     {"store_unavailable", http.StatusServiceUnavailable, slog.LevelError, "temporarily unavailable, retry later"},
	outcomeInternal:             {"internal_error", http.StatusInternalServerError, slog.LevelError, "internal error"},
}

func (o outcome) info() outcomeInfo { return outcomes[o] }

// errorOutcomes maps the errors of deciding and appending to outcomes,
// matched with errors.Is in order; anything else is outcomeInternal.
// A deadline or cancellation means the store could not make the event
// durable in time: the provider must retry, so it is never a 200.
var errorOutcomes = []struct {
	err     error
	outcome outcome
}{
	{aggregate.ErrConflict, outcomeConflict},
	{ErrUnauthenticated, outcomeBadSignature}, // a signature claimed for another stream
	{eventstore.ErrUnavailable, outcomeStoreUnavailable},
	{eventstore.ErrClosed, outcomeStoreUnavailable},
	{eventstore.ErrWrongRevision, outcomeStoreUnavailable}, // still contended after every attempt
	{context.DeadlineExceeded, outcomeStoreUnavailable},
	{context.Canceled, outcomeStoreUnavailable},
	{eventstore.ErrInvalid, outcomeInternal},
	{aggregate.ErrBadEvent, outcomeInternal},
}

// outcomeOf classifies an error from deciding or appending a fact.
func outcomeOf(err error) outcome {
	for _, e := range errorOutcomes {
		if errors.Is(err, e.err) {
			return e.outcome
		}
	}
	return outcomeInternal
}
