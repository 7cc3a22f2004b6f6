package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// TestOutcomeOf walks every sentinel the store and the aggregate return,
// wrapped as adapters wrap them, through the one error table.
func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err    error
		want   outcome
		status int
	}{
		{aggregate.ErrConflict, outcomeConflict, http.StatusConflict},
		{errClaimedByAnotherBody, outcomeConflict, http.StatusConflict},
		{ErrUnauthenticated, outcomeBadSignature, http.StatusUnauthorized},
		{errClaimedElsewhere, outcomeBadSignature, http.StatusUnauthorized},
		{eventstore.ErrUnavailable, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{eventstore.ErrClosed, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{eventstore.ErrWrongRevision, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{&eventstore.WrongRevisionError{Stream: "s", Expected: eventstore.NoStream, Actual: 3}, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{context.DeadlineExceeded, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{context.Canceled, outcomeStoreUnavailable, http.StatusServiceUnavailable},
		{eventstore.ErrInvalid, outcomeInternal, http.StatusInternalServerError},
		{aggregate.ErrBadEvent, outcomeInternal, http.StatusInternalServerError},
		{aggregate.ErrUnnormalizable, outcomeInternal, http.StatusInternalServerError}, // only from Decide, after checkNormalized: a bug
		{aggregate.ErrUnknownEvent, outcomeInternal, http.StatusInternalServerError},
		{errors.New("something else"), outcomeInternal, http.StatusInternalServerError},
	} {
		for _, err := range []error{tc.err, fmt.Errorf("op: %w", tc.err), fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", tc.err))} {
			got := outcomeOf(err)
			if got != tc.want || got.info().status != tc.status {
				t.Errorf("outcomeOf(%v) = %s (%d), want %s (%d)", err, got.info().label, got.info().status, tc.want.info().label, tc.status)
			}
		}
	}
}

// TestOutcomeTable: every outcome has a distinct label, a status, and an
// error message exactly when it is not a 200.
func TestOutcomeTable(t *testing.T) {
	seen := map[string]bool{}
	for o := range numOutcomes {
		info := o.info()
		if info.label == "" || info.status == 0 || seen[info.label] {
			t.Errorf("outcome %d: %+v", o, info)
		}
		seen[info.label] = true
		if (info.status == http.StatusOK) != (info.message == "") {
			t.Errorf("outcome %s: status %d with message %q", info.label, info.status, info.message)
		}
	}
}
