package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// TestAnswerBodies: every outcome's answer is the JSON of answerBody (the
// 200s' written by hand) with its headers.
func TestAnswerBodies(t *testing.T) {
	h := &Handler{retryAfter: "5"}
	for o := range numOutcomes {
		for _, pos := range []eventstore.Position{{}, {Commit: 7, Prepare: 7}, {Commit: 1 << 40, Prepare: 1<<40 + 3}} {
			info := o.info()
			w := httptest.NewRecorder()
			if status := h.answer(w, result{outcome: o, position: pos}); status != info.status || w.Code != info.status {
				t.Fatalf("%s: status %d, recorded %d", info.label, status, w.Code)
			}
			want := answerBody{Error: info.message}
			if info.status == http.StatusOK {
				want = answerBody{Status: info.label, Position: pos.String()}
				if got := w.Header().Get(PositionHeader); got != pos.String() {
					t.Errorf("%s: %s %q", info.label, PositionHeader, got)
				}
			}
			body, _ := json.Marshal(want)
			if got := w.Body.String(); got != string(body)+"\n" {
				t.Errorf("%s at %v: body %q, want %q", info.label, pos, got, body)
			}
			if ct, n := w.Header().Get("Content-Type"), w.Header().Get("Content-Length"); ct != "application/json" || n != strconv.Itoa(w.Body.Len()) ||
				w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: headers %v", info.label, w.Header())
			}
		}
	}
}
