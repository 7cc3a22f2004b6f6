package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/projections"
)

// TestToStatus walks every sentinel the read side returns, bare and wrapped
// with %w (once and twice, as a Reader and a store would), through the
// status table.
func TestToStatus(t *testing.T) {
	want := []struct {
		err  error
		code codes.Code
	}{
		{projections.ErrNotFound, codes.NotFound},
		{projections.ErrBehind, codes.Unavailable},
		{projections.ErrBadPageToken, codes.InvalidArgument},
		{projections.ErrBadQuery, codes.InvalidArgument},
		{projections.ErrUnknownProjection, codes.InvalidArgument},
		{projections.ErrBusy, codes.Aborted},
		{projections.ErrAheadOfLog, codes.FailedPrecondition},
		{ErrBackupUnsupported, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
	}
	// Every row of the table is tested: a new row needs a case here.
	for _, row := range statusTable {
		found := false
		for _, w := range want {
			found = found || w.err == row.err
		}
		if !found {
			t.Errorf("statusTable maps %v, which TestToStatus does not test", row.err)
		}
	}

	for _, tc := range want {
		for _, err := range []error{
			tc.err,
			fmt.Errorf("projections: read receipt-reewild.x: %w", tc.err),
			fmt.Errorf("api: GetReceipt: %w", fmt.Errorf("bolt /var/lib/secret.db: %w", tc.err)),
			errors.Join(errors.New("something else"), tc.err),
		} {
			t.Run(err.Error(), func(t *testing.T) {
				var logged bytes.Buffer
				got := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logged, nil)), "GetReceipt", `receipt "x"`, err)
				st, ok := status.FromError(got)
				if !ok {
					t.Fatalf("toStatus returned %T, not a status", got)
				}
				if st.Code() != tc.code {
					t.Errorf("code = %v, want %v", st.Code(), tc.code)
				}
				if !strings.HasPrefix(st.Message(), `GetReceipt: receipt "x": `) {
					t.Errorf("message %q does not name the operation and subject", st.Message())
				}
				if strings.Contains(st.Message(), "secret") {
					t.Errorf("message %q leaks the error's text", st.Message())
				}
				if logged.Len() != 0 {
					t.Errorf("a mapped error was logged: %s", logged.String())
				}
			})
		}
	}
}

func TestToStatusInternal(t *testing.T) {
	for _, err := range []error{
		errors.New("bolt: /var/lib/secret.db: input/output error"),
		fmt.Errorf("convert receipt: %w", errUnconvertible),
		// An error that only looks like a sentinel is not one.
		errors.New(projections.ErrNotFound.Error()),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			var logged bytes.Buffer
			got := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logged, nil)), "GetBalance", `user "u"`, err)
			st := status.Convert(got)
			if st.Code() != codes.Internal {
				t.Errorf("code = %v, want Internal", st.Code())
			}
			if st.Message() != "GetBalance: internal error" {
				t.Errorf("message = %q, want no internals", st.Message())
			}
			if !strings.Contains(logged.String(), err.Error()) || !strings.Contains(logged.String(), "op=GetBalance") {
				t.Errorf("log %q does not carry the operation and the error", logged.String())
			}
		})
	}
}
