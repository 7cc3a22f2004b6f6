package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/eventstore"
)

// The client finds its node in a state machine of its own: the first call
// after a connection loss runs discovery there, ignoring contexts, while
// every other call waits for it on an unbuffered channel; when discovery
// fails the state machine exits for good, the client is closed, and a call
// still waiting on that channel waits forever. Closing a client while a call
// waits on its channel panics.
//
// So the Store wraps each client in a conn and:
//   - runs every client call in its own goroutine, and gives up on it when
//     the call's context ends, so a caller never waits past its deadline;
//   - lets one call at a time into a client that has not yet answered
//     (proven is false), so only one call ever waits for a discovery;
//   - retires a client when a call reports the connection lost, so the next
//     call starts a new client (new discovery, new gRPC connection) instead
//     of the old client's reconnection, which leaks its old connection;
//   - closes a retired client only once no call of the Store is inside it
//     and no subscription of the Store still reads from its connection (a
//     connection that a call found unavailable may still carry a healthy
//     subscription, which then ends on its own terms).

// conn is one client and what the Store knows of it.
type conn struct {
	client *esdb.Client
	// proven is set once the server answered a call on this client.
	proven atomic.Bool
	// gate admits one call at a time while proven is false.
	gate chan struct{}
	// refs (calls inside the client) and retired are guarded by Store.mu.
	refs    int
	retired bool
}

// acquire returns the current conn, creating it if needed, with a reference
// for the caller, and counts the call in s.calls.
func (s *Store) acquire() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	if s.cur == nil {
		cfg := s.cfg
		client, err := esdb.NewClient(&cfg)
		if err != nil {
			return nil, err // the configuration was validated by Open
		}
		s.cur = &conn{client: client, gate: make(chan struct{}, 1)}
	}
	s.cur.refs++
	s.calls.Add(1)
	return s.cur, nil
}

// hold takes one more reference on c, for a subscription that keeps using
// its client's connection after the call that opened it.
func (s *Store) hold(c *conn) {
	s.mu.Lock()
	c.refs++
	s.mu.Unlock()
}

// release drops a reference taken by acquire or hold, closing the client when it was
// retired and this was the last call inside it.
func (s *Store) release(c *conn) {
	s.mu.Lock()
	c.refs--
	closeNow := c.retired && c.refs == 0
	s.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
}

// retire stops new calls from using c, and reports whether c was in use
// until now. Its client is closed once the calls inside it are done.
func (s *Store) retire(c *conn) bool {
	s.mu.Lock()
	wasCurrent := s.cur == c
	if wasCurrent {
		s.cur = nil
	}
	closeNow := !c.retired && c.refs == 0
	c.retired = true
	s.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
	return wasCurrent
}

// observe records what a call's outcome says about its connection.
func (s *Store) observe(c *conn, err error) {
	switch {
	case serverAnswered(err):
		c.proven.Store(true)
	case connectionLost(err):
		if s.retire(c) && s.life.Err() == nil {
			// Warn when a working connection is lost; while the server
			// stays unreachable, each new client's failure is only debug.
			level := slog.LevelDebug
			if c.proven.Load() {
				level = slog.LevelWarn
			}
			s.logger.Log(context.Background(), level, "esdb: connection lost; the next call connects anew", "target", s.target, "err", err)
		}
	case !c.proven.Load() && errorIs(err, esdb.ErrorCodeDeadlineExceeded):
		// A discovery that timed out leaves its client closed.
		s.retire(c)
	}
}

// call runs fn on a client in its own goroutine and returns its result, or
// ctx's error as soon as ctx ends (fn, given the same ctx, then finishes on
// its own). It fails with eventstore.ErrClosed once the Store is closed.
func call[T any](s *Store, ctx context.Context, fn func(context.Context, *esdb.Client) (T, error)) (T, error) {
	v, _, err := callOn(s, ctx, fn)
	return v, err
}

// callOn is call, also returning the conn fn ran on (nil when it did not
// run, or when ctx ended first).
func callOn[T any](s *Store, ctx context.Context, fn func(context.Context, *esdb.Client) (T, error)) (T, *conn, error) {
	var zero T
	c, err := s.acquire()
	if err != nil {
		return zero, nil, err
	}
	defer s.calls.Done()
	gated := !c.proven.Load()
	if gated {
		select {
		case c.gate <- struct{}{}:
		case <-ctx.Done():
			s.release(c)
			return zero, nil, ctx.Err()
		case <-s.life.Done():
			s.release(c)
			return zero, nil, eventstore.ErrClosed
		}
		if c.proven.Load() {
			<-c.gate
			gated = false
		}
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(ctx, c.client)
		s.observe(c, err)
		if gated {
			<-c.gate
		}
		s.release(c)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, c, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // it finished meanwhile: the outcome is known
			return r.v, c, r.err
		default:
			return zero, nil, ctx.Err()
		}
	}
}

// wrap turns a call's error into the Store's: the caller's context error
// when ctx ended, otherwise the eventstore sentinel its code maps to (and
// context.DeadlineExceeded for a deadline the server or gRPC reported), with
// the operation's name.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ended(ctx); cerr != nil {
		return fmt.Errorf("esdb: %s: %w", op, cerr)
	}
	sentinel := s.sentinel(err)
	deadline := (errorIs(err, esdb.ErrorCodeDeadlineExceeded) || grpcCode(err) == codes.DeadlineExceeded) &&
		!errors.Is(err, context.DeadlineExceeded)
	switch {
	case sentinel == nil || errors.Is(err, sentinel):
		return fmt.Errorf("esdb: %s: %w", op, err)
	case deadline:
		return fmt.Errorf("esdb: %s: %w: %w: %w", op, sentinel, context.DeadlineExceeded, err)
	default:
		return fmt.Errorf("esdb: %s: %w: %w", op, sentinel, err)
	}
}

// ended returns ctx's error, or context.DeadlineExceeded once its deadline
// has passed (gRPC may report the deadline a moment before ctx does).
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// sentinel returns the eventstore error err maps to, nil for none.
func (s *Store) sentinel(err error) error {
	if errors.Is(err, eventstore.ErrClosed) {
		return eventstore.ErrClosed
	}
	closed := s.life.Err() != nil
	if code, ok := errorCode(err); ok {
		switch code {
		case esdb.ErrorCodeConnectionClosed:
			if closed {
				return eventstore.ErrClosed
			}
			return eventstore.ErrUnavailable
		case esdb.ErrorUnavailable, esdb.ErrorCodeNotLeader, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorAborted:
			return eventstore.ErrUnavailable
		case esdb.ErrorCodeStreamDeleted:
			return eventstore.ErrStreamDeleted
		}
	}
	switch grpcCode(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return eventstore.ErrUnavailable
	case codes.Canceled:
		if closed {
			return eventstore.ErrClosed
		}
		return eventstore.ErrUnavailable
	case codes.InvalidArgument, codes.OutOfRange:
		return eventstore.ErrInvalid
	}
	switch {
	case streamBroken(err), errors.Is(err, context.DeadlineExceeded):
		return eventstore.ErrUnavailable
	case errors.Is(err, context.Canceled) && closed:
		return eventstore.ErrClosed
	}
	return nil
}

// streamBroken reports whether err is a gRPC stream that ended under the
// client: a Send on an append stream returns io.EOF when the server or the
// connection ended the call, and the client passes that on as it is.
func streamBroken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// errorCode returns the client's error code of err, if err is (or wraps) a
// client error.
func errorCode(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func errorIs(err error, code esdb.ErrorCode) bool {
	c, ok := errorCode(err)
	return ok && c == code
}

func isNotFound(err error) bool { return errorIs(err, esdb.ErrorCodeResourceNotFound) }

// grpcCode returns the code of the gRPC status in err's chain (status.Code
// looks through wrapping), codes.Unknown for none.
func grpcCode(err error) codes.Code { return status.Code(err) }

// serverAnswered reports whether err (nil included) shows the server
// answered the call.
func serverAnswered(err error) bool {
	if err == nil {
		return true
	}
	if code, ok := errorCode(err); ok {
		switch code {
		case esdb.ErrorCodeWrongExpectedVersion, esdb.ErrorCodeResourceNotFound, esdb.ErrorCodeAccessDenied,
			esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeStreamDeleted, esdb.ErrorCodeResourceAlreadyExists:
			return true
		}
	}
	switch grpcCode(err) {
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.AlreadyExists, codes.OutOfRange:
		return true
	}
	return false
}

// connectionLost reports whether err shows the client's connection is gone
// (or the client itself closed after a failed discovery).
func connectionLost(err error) bool {
	if code, ok := errorCode(err); ok {
		switch code {
		case esdb.ErrorUnavailable, esdb.ErrorCodeConnectionClosed:
			return true
		}
	}
	return grpcCode(err) == codes.Unavailable || streamBroken(err)
}
