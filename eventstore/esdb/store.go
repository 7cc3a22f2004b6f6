package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// DefaultCategories are the stream categories receiptd writes: ReadAll, Head
// and Subscribe select the streams "{category}-…" of these and of
// Options.Categories.
var DefaultCategories = []string{
	aggregate.CategoryReceipt,
	aggregate.CategoryUser,
	aggregate.CategoryOffer,
	aggregate.CategoryAccount,
	aggregate.CategoryOrder,
	aggregate.CategoryCustomer,
	aggregate.CategoryRedemption,
	aggregate.CategoryNotice,
	aggregate.CategoryQuestion,
	aggregate.CategoryQuarantine,
}

// Options tune a Store. The zero value is the production default.
type Options struct {
	// Categories adds stream categories to DefaultCategories (tests use
	// their own). A category is the part of a stream name before the first
	// "-": it must be non-empty and hold neither "-" nor a leading "$".
	Categories []string

	// CallTimeout bounds every call to the server (an append, one page of a
	// read, opening a subscription) when the caller's context allows longer.
	// Zero means 5 seconds.
	CallTimeout time.Duration

	// MaxAppendBytes bounds the data, metadata and type bytes of one
	// Append's events; a larger append fails with eventstore.ErrInvalid
	// without reaching the server. Zero means 1 MiB, the server's default
	// MaxAppendSize.
	MaxAppendBytes int

	// MinBackoff and MaxBackoff bound the wait before Subscribe resubscribes
	// after its subscription dropped; it doubles from MinBackoff after each
	// failed attempt. Zero means 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives the Store's warnings (a subscription dropped, a
	// connection replaced) and, at debug level, the client's own log. Nil
	// discards them.
	Logger *slog.Logger
}

const (
	defaultCallTimeout    = 5 * time.Second
	defaultMaxAppendBytes = 1 << 20
	defaultMinBackoff     = 100 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second

	// maxStreamName bounds a stream name, as the embedded store does.
	maxStreamName = 1024
	// headPage and maxPage size the pages of $all that Head and ReadAll
	// read when they must skip events that are not receiptd's.
	headPage = 64
	maxPage  = 4096
)

func (o Options) withDefaults() (Options, error) {
	if o.CallTimeout <= 0 {
		o.CallTimeout = defaultCallTimeout
	}
	if o.MaxAppendBytes <= 0 {
		o.MaxAppendBytes = defaultMaxAppendBytes
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, c := range o.Categories {
		if c == "" || strings.Contains(c, "-") || strings.HasPrefix(c, "$") {
			return o, fmt.Errorf("%w: category %q: want a non-empty name with no \"-\" and no leading \"$\"", eventstore.ErrInvalid, c)
		}
	}
	return o, nil
}

// Store is an eventstore.Store on a KurrentDB node or cluster. Its methods
// are safe for concurrent use.
type Store struct {
	cfg      esdb.Configuration // parsed once; each client gets a copy
	target   string             // the connection string without credentials, for errors
	opts     Options
	prefixes []string // "{category}-" of every selected category
	logger   *slog.Logger

	life context.Context // ended by Close
	stop context.CancelFunc

	mu     sync.Mutex
	cur    *conn // nil until needed, and after a connection was lost
	closed bool
	calls  sync.WaitGroup // calls in flight; Close waits for them
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the node or cluster of connStr and checks, with one
// read of $all bounded by ctx (and Options.CallTimeout), that it answers
// and lets this user read $all. ctx bounds the opening only, not the
// Store's life.
func Open(ctx context.Context, connStr string, opts Options) (*Store, error) {
	target := redact(connStr)
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("esdb: open %s: %w", target, err)
	}
	cfg, err := parseConnString(connStr, opts)
	if err != nil {
		return nil, fmt.Errorf("esdb: open %s: %w: %w", target, eventstore.ErrInvalid, err)
	}
	s := &Store{cfg: *cfg, target: target, opts: opts, logger: opts.Logger}
	s.cfg.Logger = s.clientLog
	for _, c := range append(append([]string(nil), DefaultCategories...), opts.Categories...) {
		s.prefixes = append(s.prefixes, c+"-")
	}
	s.life, s.stop = context.WithCancel(context.Background())
	if err := s.ping(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("esdb: open %s: %w", target, err)
	}
	return s, nil
}

// parseConnString parses a connection string with the client and sets the
// Store's defaults for what it leaves unset.
func parseConnString(connStr string, opts Options) (*esdb.Configuration, error) {
	for _, alias := range []string{"kurrentdb", "kurrent"} {
		if rest, ok := strings.CutPrefix(connStr, alias+"://"); ok {
			connStr = "esdb://" + rest
		} else if rest, ok := strings.CutPrefix(connStr, alias+"+discover://"); ok {
			connStr = "esdb+discover://" + rest
		}
	}
	cfg, err := esdb.ParseConnectionString(connStr)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if _, rawQuery, ok := strings.Cut(connStr, "?"); ok {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, err
		}
		for k := range q {
			set[strings.ToLower(k)] = true
		}
	}
	// The Store retries across clients itself (see conn.go): one discovery
	// attempt per call, bounded like a call.
	if !set["maxdiscoverattempts"] {
		cfg.MaxDiscoverAttempts = 1
	}
	if !set["gossiptimeout"] {
		cfg.GossipTimeout = int(math.Ceil(opts.CallTimeout.Seconds()))
	}
	return cfg, nil
}

// redact returns connStr without its password, for error messages.
func redact(connStr string) string {
	scheme, rest, ok := strings.Cut(connStr, "://")
	if !ok {
		return connStr
	}
	if userinfo, hostEtc, ok := strings.Cut(rest, "@"); ok {
		user, _, _ := strings.Cut(userinfo, ":")
		return scheme + "://" + user + ":xxxxx@" + hostEtc
	}
	return connStr
}

// clientLog receives the client's log lines, at debug level.
func (s *Store) clientLog(level esdb.LogLevel, format string, args ...any) {
	if !s.logger.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	s.logger.Debug("esdb client: "+fmt.Sprintf(format, args...), "client_level", level)
}

// callCtx returns ctx bounded by the call timeout.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.CallTimeout)
}

// ping reads the last event of $all, whoever's it is.
func (s *Store) ping(ctx context.Context) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := s.readAllPage(cctx, esdb.End{}, esdb.Backwards, 1)
	return s.wrap(ctx, "read $all", err)
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	op := fmt.Sprintf("append to %q", stream)
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: %s: %w", op, err)
	}
	data, want, err := s.proposed(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: %s: %w", op, err)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	wr, err := call(s, cctx, func(ctx context.Context, c *esdb.Client) (*esdb.WriteResult, error) {
		return c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: want}, data...)
	})
	if err != nil {
		if code, ok := errorCode(err); ok && code == esdb.ErrorCodeWrongExpectedVersion {
			return eventstore.AppendResult{}, s.wrongRevision(ctx, stream, expected)
		}
		return eventstore.AppendResult{}, s.wrap(ctx, op, err)
	}
	res := eventstore.AppendResult{
		NextRevision: wr.NextExpectedVersion,
		Position:     eventstore.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition},
	}
	if res.Position.IsStart() {
		// KurrentDB answers with the position of the write's last event,
		// which is what the contract wants. Without one (no_position), the
		// last event is read back for it.
		last, err := s.readStream(cctx, stream, res.NextRevision, 1)
		switch {
		case err == nil && len(last) == 1 && last[0].Revision == res.NextRevision && !last[0].Position.IsStart():
			res.Position = last[0].Position
		default:
			s.logger.Warn("esdb: appended, but could not read back the last event's position; returning the server's",
				"stream", stream, "revision", res.NextRevision, "position", res.Position.String(), "err", err)
		}
	}
	return res, nil
}

// Tombstone deletes stream for good (KurrentDB's hard delete): it reads,
// and answers appends, as deleted (eventstore.ErrStreamDeleted) from now
// on, and its events leave the server's disks at the next scavenge. Only
// the privacy key store (privacy.StreamStore) tombstones streams; none of
// the categories the read models follow is ever deleted.
func (s *Store) Tombstone(ctx context.Context, stream string) error {
	op := fmt.Sprintf("tombstone %q", stream)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("esdb: %s: %w", op, err)
	}
	if err := checkStreamName(stream); err != nil {
		return fmt.Errorf("esdb: %s: %w", op, err)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := call(s, cctx, func(ctx context.Context, c *esdb.Client) (*esdb.DeleteResult, error) {
		return c.TombstoneStream(ctx, stream, esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
	})
	return s.wrap(ctx, op, err)
}

// proposed validates an append and converts its events.
func (s *Store) proposed(stream string, expected eventstore.ExpectedRevision, events []aggregate.Event) ([]esdb.EventData, esdb.ExpectedRevision, error) {
	if err := checkStreamName(stream); err != nil {
		return nil, nil, err
	}
	if len(events) == 0 {
		return nil, nil, fmt.Errorf("%w: no events", eventstore.ErrInvalid)
	}
	var want esdb.ExpectedRevision
	switch {
	case expected == eventstore.NoStream:
		want = esdb.NoStream{}
	case expected == eventstore.Any:
		want = esdb.Any{}
	case expected >= 0:
		want = esdb.Revision(uint64(expected))
	default:
		return nil, nil, fmt.Errorf("%w: expected revision %d", eventstore.ErrInvalid, int64(expected))
	}
	data := make([]esdb.EventData, len(events))
	size := 0
	for i, e := range events {
		id, err := uuid.Parse(e.ID)
		switch {
		case err != nil || id.String() != e.ID:
			return nil, nil, fmt.Errorf("%w: event %d: id %q is not a UUID in canonical form", eventstore.ErrInvalid, i, e.ID)
		case id == uuid.Nil:
			return nil, nil, fmt.Errorf("%w: event %d: nil UUID", eventstore.ErrInvalid, i)
		case e.Type == "":
			return nil, nil, fmt.Errorf("%w: event %d has no type", eventstore.ErrInvalid, i)
		case strings.HasPrefix(e.Type, "$"):
			return nil, nil, fmt.Errorf("%w: event %d: type %q is reserved for the server", eventstore.ErrInvalid, i, e.Type)
		}
		size += len(e.Data) + len(e.Metadata) + len(e.Body) + len(e.Type)
		if size > s.opts.MaxAppendBytes {
			return nil, nil, fmt.Errorf("%w: events over %d bytes", eventstore.ErrInvalid, s.opts.MaxAppendBytes)
		}
		data[i] = esdb.EventData{
			EventID:     id,
			EventType:   e.Type,
			ContentType: esdb.ContentTypeJson,
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
		if framed(e) {
			data[i].ContentType, data[i].Data = esdb.ContentTypeBinary, appendFrame(nil, e)
		}
	}
	return data, want, nil
}

func checkStreamName(stream string) error {
	switch {
	case stream == "":
		return fmt.Errorf("%w: empty stream name", eventstore.ErrInvalid)
	case len(stream) > maxStreamName:
		return fmt.Errorf("%w: stream name of %d bytes (at most %d)", eventstore.ErrInvalid, len(stream), maxStreamName)
	case strings.HasPrefix(stream, "$"):
		return fmt.Errorf("%w: stream %q is a system stream", eventstore.ErrInvalid, stream)
	}
	return nil
}

// wrongRevision builds the error of a refused append, reading the stream's
// current revision (the client gives it only in its message text).
func (s *Store) wrongRevision(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	wre := &eventstore.WrongRevisionError{Stream: stream, Expected: expected, Actual: eventstore.NoStream}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	last, err := call(s, cctx, func(ctx context.Context, c *esdb.Client) ([]eventstore.RecordedEvent, error) {
		return readStreamWith(ctx, c, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	})
	switch {
	case err == nil && len(last) > 0:
		wre.Actual = eventstore.Exact(last[0].Revision)
	case err == nil || isNotFound(err):
	default:
		// The refusal stands; only its detail is missing. Any marks the
		// current revision as unknown.
		wre.Actual = eventstore.Any
		return fmt.Errorf("esdb: append to %q: %w (reading the current revision: %w)", stream, wre, s.wrap(ctx, "read", err))
	}
	return fmt.Errorf("esdb: %w", wre)
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	op := fmt.Sprintf("read stream %q", stream)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("esdb: %s: %w", op, err)
	}
	if stream == "" {
		return nil, fmt.Errorf("esdb: %s: %w: empty stream name", op, eventstore.ErrInvalid)
	}
	count := uint64(math.MaxInt64)
	if limit > 0 {
		count = uint64(limit)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	out, err := s.readStream(cctx, stream, from, count)
	if err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	return out, nil
}

// readStream reads count events of stream from revision from; a stream
// that does not exist reads as empty.
func (s *Store) readStream(ctx context.Context, stream string, from, count uint64) ([]eventstore.RecordedEvent, error) {
	out, err := call(s, ctx, func(ctx context.Context, c *esdb.Client) ([]eventstore.RecordedEvent, error) {
		return readStreamWith(ctx, c, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}, count)
	})
	if isNotFound(err) {
		return nil, nil
	}
	return out, err
}

func readStreamWith(ctx context.Context, c *esdb.Client, stream string, o esdb.ReadStreamOptions, count uint64) ([]eventstore.RecordedEvent, error) {
	rs, err := c.ReadStream(ctx, stream, o, count)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []eventstore.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if r, ok := recorded(ev); ok {
			out = append(out, r)
		}
	}
}

// ReadAll implements eventstore.Store: the selected events of $all strictly
// after `after`, read in pages of $all (the client cannot ask the server to
// filter a read).
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	op := fmt.Sprintf("read $all after %s", after)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("esdb: %s: %w", op, err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("esdb: %s: %w: limit %d", op, eventstore.ErrInvalid, limit)
	}
	page := min(max(limit+1, headPage), maxPage)
	var out []eventstore.RecordedEvent
	cursor := after
	var from esdb.AllPosition = esdb.Start{}
	if !after.IsStart() {
		from = esdb.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	for len(out) < limit {
		cctx, cancel := s.callCtx(ctx)
		evs, err := s.readAllPage(cctx, from, esdb.Forwards, page)
		cancel()
		if err != nil {
			return nil, s.wrap(ctx, op, err)
		}
		advanced := false
		for _, e := range evs {
			// A read from a position includes the event at it.
			if !cursor.Less(e.Position) {
				continue
			}
			cursor, advanced = e.Position, true
			if s.selected(e) {
				out = append(out, e)
				if len(out) == limit {
					break
				}
			}
		}
		if len(evs) < page {
			break // the end of $all
		}
		if !advanced {
			return nil, fmt.Errorf("esdb: %s: the server returned a full page at or before %s", op, cursor)
		}
		from = esdb.Position{Commit: cursor.Commit, Prepare: cursor.Prepare}
	}
	return out, nil
}

// readAllPage reads up to count events of $all, every one, in direction
// dir. Fewer than count means the end of $all.
func (s *Store) readAllPage(ctx context.Context, from esdb.AllPosition, dir esdb.Direction, count int) ([]eventstore.RecordedEvent, error) {
	return call(s, ctx, func(ctx context.Context, c *esdb.Client) ([]eventstore.RecordedEvent, error) {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: dir, From: from}, uint64(count))
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		out := make([]eventstore.RecordedEvent, 0, count)
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			r, ok := recorded(ev)
			if !ok {
				// Never without resolving links; a page must keep its count.
				return nil, fmt.Errorf("the server sent a read of $all without its event")
			}
			out = append(out, r)
		}
	})
}

// Head implements eventstore.Store: the position of the last selected event
// of $all, found by reading $all backwards.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	const op = "head"
	if err := ctx.Err(); err != nil {
		return eventstore.Position{}, fmt.Errorf("esdb: %s: %w", op, err)
	}
	var from esdb.AllPosition = esdb.End{}
	var cursor *eventstore.Position
	for page := headPage; ; page = min(page*4, maxPage) {
		cctx, cancel := s.callCtx(ctx)
		evs, err := s.readAllPage(cctx, from, esdb.Backwards, page)
		cancel()
		if err != nil {
			return eventstore.Position{}, s.wrap(ctx, op, err)
		}
		advanced := false
		for _, e := range evs {
			if cursor != nil && !e.Position.Less(*cursor) {
				continue
			}
			cursor, advanced = &e.Position, true
			if s.selected(e) {
				return e.Position, nil
			}
		}
		if len(evs) < page {
			return eventstore.Start, nil
		}
		if !advanced {
			return eventstore.Position{}, fmt.Errorf("esdb: %s: the server returned a full page at or after %s", op, *cursor)
		}
		from = esdb.Position{Commit: cursor.Commit, Prepare: cursor.Prepare}
	}
}

// selected reports whether e is one of receiptd's events.
func (s *Store) selected(e eventstore.RecordedEvent) bool {
	if strings.HasPrefix(e.Type, "$") || strings.HasPrefix(e.Stream, "$") {
		return false
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(e.Stream, p) {
			return true
		}
	}
	return false
}

// recorded converts an event as read. Links are not resolved, so the event
// is the one read.
func recorded(ev *esdb.ResolvedEvent) (eventstore.RecordedEvent, bool) {
	e := ev.OriginalEvent()
	if e == nil {
		return eventstore.RecordedEvent{}, false
	}
	pos := eventstore.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
	if pos.Commit == math.MaxUint64 {
		// The server did not say (a stream read on an older server).
		pos = eventstore.Start
	}
	out := eventstore.RecordedEvent{
		Event: aggregate.Event{
			ID:       e.EventID.String(),
			Type:     e.EventType,
			Data:     e.Data,
			Metadata: e.UserMetadata,
		},
		Stream:     e.StreamID,
		Revision:   e.EventNumber,
		Position:   pos,
		RecordedAt: e.CreatedDate,
	}
	if e.ContentType == contentTypeFramed {
		data, body, ok := parseFrame(e.Data)
		if !ok {
			// Not a frame this package wrote: pass it on as it is.
			return out, true
		}
		out.Data, out.Body = data, body
	}
	return out, true
}

// Close implements eventstore.Store. Calls in flight finish (each within its
// deadline); subscriptions end with eventstore.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("esdb: close %s: %w", s.target, eventstore.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.calls.Wait()
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		s.retire(c)
	}
	return nil
}
