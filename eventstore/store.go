package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

// Store is the seam between receiptd and its log. Every method is safe for
// concurrent use. Implementations pass eventstore/storetest.
type Store interface {
	// Append writes events, in order, to the end of stream if the stream's
	// current revision is expected (NoStream for a stream with no events,
	// Any to skip the check). It returns only once the events are durable
	// (fsynced, or acknowledged by the server): a nil error is a promise that
	// the events survive a crash.
	//
	// A revision mismatch returns an error matching ErrWrongRevision (and
	// errors.As a *WrongRevisionError). When ctx ends before the outcome is
	// known, Append returns ctx.Err() wrapped: the events may or may not have
	// been written, and the caller must re-read the stream before retrying.
	// Appending no events is an error.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...aggregate.Event) (AppendResult, error)

	// ReadStream returns up to limit events of stream with revision >= from,
	// in revision order (limit <= 0 means all). A stream that does not exist
	// reads as empty with a nil error.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]RecordedEvent, error)

	// ReadAll returns up to limit events of the whole log with a position
	// strictly after `after`, in position order. Start reads from the first
	// event. limit must be positive.
	ReadAll(ctx context.Context, after Position, limit int) ([]RecordedEvent, error)

	// Subscribe delivers every event after `after`, first those already in
	// the log (catch-up) and then new ones as they are appended (live), in
	// position order, with no gap and no repeat, in batches to handle.
	// It blocks until ctx ends (returning ctx.Err()), handle returns an error
	// (returning it), or the store fails or closes. handle is never called
	// with an empty batch and never concurrently.
	Subscribe(ctx context.Context, after Position, handle func(context.Context, []RecordedEvent) error) error

	// Head returns the position of the last event in the log (Start when the
	// log is empty).
	Head(ctx context.Context) (Position, error)

	// Close releases the store. Appends in flight either complete or fail;
	// later calls return ErrClosed.
	Close() error
}

// Position is an event's place in the store's global order. The embedded
// store numbers events 1, 2, 3… and sets Commit == Prepare; KurrentDB has a
// distinct prepare position. Positions compare by Commit, then Prepare.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Start is the position before the first event.
var Start = Position{}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// IsStart reports whether p is Start.
func (p Position) IsStart() bool { return p == Start }

func (p Position) String() string {
	if p.Commit == p.Prepare {
		return fmt.Sprintf("%d", p.Commit)
	}
	return fmt.Sprintf("%d/%d", p.Commit, p.Prepare)
}

// ExpectedRevision is the condition on an append: a stream revision (>= 0),
// NoStream or Any.
type ExpectedRevision int64

const (
	// NoStream expects the stream to have no events.
	NoStream ExpectedRevision = -1
	// Any appends whatever the stream's revision.
	Any ExpectedRevision = -2
)

// Exact expects the stream's last event to have revision rev.
func Exact(rev uint64) ExpectedRevision { return ExpectedRevision(rev) }

// ExpectedAfter returns the expected revision for appending after the events
// read from a stream: NoStream when none were read.
func ExpectedAfter(read []RecordedEvent) ExpectedRevision {
	if len(read) == 0 {
		return NoStream
	}
	return Exact(read[len(read)-1].Revision)
}

func (e ExpectedRevision) String() string {
	switch e {
	case NoStream:
		return "no-stream"
	case Any:
		return "any"
	default:
		return fmt.Sprintf("%d", int64(e))
	}
}

// AppendResult describes a successful append.
type AppendResult struct {
	// NextRevision is the revision of the last event appended.
	NextRevision uint64
	// Position is the global position of the last event appended.
	Position Position
}

// RecordedEvent is an event as the store holds it.
type RecordedEvent struct {
	aggregate.Event
	Stream     string
	Revision   uint64
	Position   Position
	RecordedAt time.Time
}

// Errors returned by every Store. Adapters wrap them with the operation's
// name; match them with errors.Is.
var (
	// ErrWrongRevision: the stream's revision was not the expected one.
	ErrWrongRevision = errors.New("eventstore: wrong expected revision")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("eventstore: store closed")
	// ErrUnavailable: the store cannot make events durable right now (fsync
	// failed, disk full, server unreachable). Transient: retry later.
	ErrUnavailable = errors.New("eventstore: store unavailable")
	// ErrInvalid: the request itself is wrong (no events, empty stream name).
	ErrInvalid = errors.New("eventstore: invalid request")
	// ErrStreamDeleted: the stream was deleted for good (a KurrentDB
	// tombstone): it reads as this error and can never be written again.
	// Only stores that delete streams return it; receiptd deletes none of
	// the streams its read models follow.
	ErrStreamDeleted = errors.New("eventstore: stream deleted")
)

// WrongRevisionError details ErrWrongRevision.
type WrongRevisionError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's current revision, or NoStream.
	Actual ExpectedRevision
}

func (e *WrongRevisionError) Error() string {
	return fmt.Sprintf("eventstore: append to %q: expected revision %s, stream is at %s", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongRevision) true.
func (e *WrongRevisionError) Is(target error) bool { return target == ErrWrongRevision }
