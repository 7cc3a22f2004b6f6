package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/eventstore"
)

// TestErrorTable walks gRPC codes and transport errors through the one
// table that maps them to eventstore's sentinels. The client's own error
// codes are exercised against the double (wrong revision, not found,
// unavailable, deadline, closed) in the package's other tests: the client
// does not let them be built outside it.
func TestErrorTable(t *testing.T) {
	open := &Store{life: context.Background()}
	closedCtx, cancel := context.WithCancel(context.Background())
	cancel()
	closed := &Store{life: closedCtx}
	wrapped := func(err error) error { return fmt.Errorf("client: %w", err) }

	for _, tc := range []struct {
		name       string
		store      *Store
		err        error
		want       error // nil: no sentinel
		lost, seen bool  // connectionLost, serverAnswered
	}{
		{"Unavailable", open, status.Error(codes.Unavailable, "x"), eventstore.ErrUnavailable, true, false},
		{"WrappedUnavailable", open, wrapped(status.Error(codes.Unavailable, "x")), eventstore.ErrUnavailable, true, false},
		{"DeadlineExceeded", open, status.Error(codes.DeadlineExceeded, "x"), eventstore.ErrUnavailable, false, false},
		{"Aborted", open, status.Error(codes.Aborted, "x"), eventstore.ErrUnavailable, false, false},
		{"ResourceExhausted", open, status.Error(codes.ResourceExhausted, "x"), eventstore.ErrUnavailable, false, false},
		{"CanceledOpen", open, status.Error(codes.Canceled, "x"), eventstore.ErrUnavailable, false, false},
		{"CanceledClosed", closed, status.Error(codes.Canceled, "x"), eventstore.ErrClosed, false, false},
		{"InvalidArgument", open, status.Error(codes.InvalidArgument, "x"), eventstore.ErrInvalid, false, true},
		{"OutOfRange", open, status.Error(codes.OutOfRange, "x"), eventstore.ErrInvalid, false, true},
		{"PermissionDenied", open, status.Error(codes.PermissionDenied, "x"), nil, false, true},
		{"Unauthenticated", open, status.Error(codes.Unauthenticated, "x"), nil, false, true},
		{"Internal", open, status.Error(codes.Internal, "x"), nil, false, false},
		{"StreamEOF", open, wrapped(io.EOF), eventstore.ErrUnavailable, true, false},
		{"ContextDeadline", open, wrapped(context.DeadlineExceeded), eventstore.ErrUnavailable, false, false},
		{"ContextCanceledClosed", closed, context.Canceled, eventstore.ErrClosed, false, false},
		{"Closed", open, eventstore.ErrClosed, eventstore.ErrClosed, false, false},
		{"Other", open, errors.New("x"), nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.store.sentinel(tc.err)
			if got != tc.want {
				t.Errorf("sentinel(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if connectionLost(tc.err) != tc.lost {
				t.Errorf("connectionLost(%v) = %v, want %v", tc.err, !tc.lost, tc.lost)
			}
			if serverAnswered(tc.err) != tc.seen {
				t.Errorf("serverAnswered(%v) = %v, want %v", tc.err, !tc.seen, tc.seen)
			}
			w := tc.store.wrap(context.Background(), "op", tc.err)
			if !errors.Is(w, tc.err) {
				t.Errorf("wrap(%v) = %v: does not wrap the error", tc.err, w)
			}
			if tc.want != nil && !errors.Is(w, tc.want) {
				t.Errorf("wrap(%v) = %v: does not match %v", tc.err, w, tc.want)
			}
		})
	}

	t.Run("CallerContextFirst", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w := open.wrap(ctx, "op", status.Error(codes.Unavailable, "x"))
		if !errors.Is(w, context.Canceled) || errors.Is(w, eventstore.ErrUnavailable) {
			t.Errorf("wrap with the caller's context ended: %v, want context.Canceled only", w)
		}
	})
	t.Run("DeadlineStatusIsContextDeadline", func(t *testing.T) {
		w := open.wrap(context.Background(), "op", status.Error(codes.DeadlineExceeded, "x"))
		if !errors.Is(w, context.DeadlineExceeded) || !errors.Is(w, eventstore.ErrUnavailable) {
			t.Errorf("wrap of a DeadlineExceeded status: %v, want ErrUnavailable and context.DeadlineExceeded", w)
		}
	})
}
