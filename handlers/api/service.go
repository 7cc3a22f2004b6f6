package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// Reader is the read side the API serves from, implemented by
// *projections.DB. Reads return errors matching projections.ErrNotFound for
// what the read models do not hold and projections.ErrBadPageToken for a
// page token they did not issue (or a page size that is not positive); the
// service never passes an empty id, an unvalidated kind or a page size
// outside 1..MaxPageSize.
type Reader interface {
	Receipt(ctx context.Context, source, receiptID string) (aggregate.ReceiptView, error)
	UserReceipts(ctx context.Context, source, userID string, pageSize int, pageToken string) (views []aggregate.ReceiptView, nextPageToken string, err error)
	Balance(ctx context.Context, source, userID string) (projections.Balance, error)
	// Entity returns an entity's view with its timeline.
	Entity(ctx context.Context, source, kind, entityID string) (projections.Entity, error)
	// Entities lists a source's entities of one kind, newest first, without
	// their timelines; a kind with no entities lists empty with a nil error.
	Entities(ctx context.Context, source, kind string, pageSize int, pageToken string) (views []projections.Entity, nextPageToken string, err error)
	// Ledger lists the changes to a user's derived points, oldest first.
	Ledger(ctx context.Context, source, userID string, pageSize int, pageToken string) (entries []projections.LedgerEntry, nextPageToken string, err error)
	// WaitFor blocks until the read models have applied the event at the given
	// commit position (bounded by ctx), returning projections.ErrBehind on timeout.
	WaitFor(ctx context.Context, position uint64) error
	Watcher
}

// Watcher tells a watch when to read its view again (see
// projections.DB.WaitChange): take a Mark, read, then WaitChange from the
// Mark until the view may have changed, read again, and so on.
type Watcher interface {
	Mark() projections.Mark
	WaitChange(ctx context.Context, since projections.Mark, key projections.Key) (projections.Mark, error)
}

// EventLog reads the events behind a receipt from the log, implemented by
// *projections.History. It returns errors matching projections.ErrNotFound
// for a receipt the log holds no event of and projections.ErrBadPageToken
// for a token it did not issue.
type EventLog interface {
	ReceiptEvents(ctx context.Context, source, receiptID string, pageSize int, pageToken string) (events []projections.HistoryEvent, nextPageToken string, err error)
}

// The read models and the log's history are what cmd/receiptd serves.
var (
	_ Reader   = (*projections.DB)(nil)
	_ EventLog = (*projections.History)(nil)
)

// Limits and defaults of requests.
const (
	// DefaultPageSize is the page size of ListUserReceipts and ListEntities
	// when the request gives none.
	DefaultPageSize = 50
	// MaxPageSize is the largest page ListUserReceipts and ListEntities
	// return; larger requested sizes are lowered to it.
	MaxPageSize = 500
	// DefaultMaxWait bounds the wait for min_position unless WithMaxWait
	// says otherwise.
	DefaultMaxWait = 2 * time.Second
	// MaxIDLength is the longest receipt, user or entity id a request may
	// carry, in bytes.
	MaxIDLength = 256
	// MaxKindLength is the longest entity kind a request may carry, in
	// bytes. A kind is made of ASCII letters, digits, "_" and ".".
	MaxKindLength = 64
)

// Option configures a ReceiptService, a StatsService or an AuditService.
type Option func(*options)

// options are the settings every service shares.
type options struct {
	maxWait time.Duration
	log     *slog.Logger
	// lifetime ends open watches when it is done.
	lifetime context.Context
	// events is the log's history (ReceiptService).
	events EventLog
	// quarantine lists and re-processes quarantined deliveries
	// (AuditService).
	quarantine Quarantine
	// subjects are the data keys personal fields are sealed under
	// (ReceiptService, PrivacyService); nil without privacy.
	subjects Subjects
	// namespaces maps a source to its user id namespace where that is
	// another source's (PrivacyService).
	namespaces map[string]string
	// overdue tells overdue receipts (receipts.go); nil: none is.
	overdue *Overdue
}

func newOptions(what string, opts []Option) (options, error) {
	o := options{maxWait: DefaultMaxWait, log: slog.Default(), lifetime: context.Background()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxWait <= 0 {
		return o, fmt.Errorf("api: new %s: max wait %v is not positive", what, o.maxWait)
	}
	if o.log == nil {
		return o, fmt.Errorf("api: new %s: nil logger", what)
	}
	if o.lifetime == nil {
		return o, fmt.Errorf("api: new %s: nil lifetime context", what)
	}
	return o, nil
}

// WithMaxWait bounds how long a request with min_position waits for the
// read models to apply that position before it is answered UNAVAILABLE
// (DefaultMaxWait if not given). The caller's deadline still applies when it
// is shorter. d must be positive.
func WithMaxWait(d time.Duration) Option {
	return func(o *options) { o.maxWait = d }
}

// WithLogger sets the logger internal errors are logged to (slog.Default()
// if not given).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithLifetime ends every open watch (WatchReceipt, WatchUser) with
// UNAVAILABLE when ctx is done, so a server shutting down need not wait
// for watchers that would never leave; they reconnect elsewhere. Without
// it, watches end only when their clients leave or their receipt is
// terminal.
func WithLifetime(ctx context.Context) Option {
	return func(o *options) { o.lifetime = ctx }
}

// WithEventLog gives a ReceiptService the log's history its
// ListReceiptEvents reads (*projections.History in receiptd).
func WithEventLog(l EventLog) Option {
	return func(o *options) { o.events = l }
}

// service is what every service shares: the configured sources (the
// first is the default) and the options.
type service struct {
	sources []string
	// waiter is the read side min_position waits on.
	waiter positionWaiter
	options
}

// newService checks a service's sources and options; what names the service
// in errors, w is its read side.
func newService(what string, w positionWaiter, sources []string, opts []Option) (service, error) {
	if len(sources) == 0 {
		return service{}, fmt.Errorf("api: new %s: no sources configured", what)
	}
	seen := make(map[string]bool, len(sources))
	for _, src := range sources {
		if src == "" {
			return service{}, fmt.Errorf("api: new %s: empty source name", what)
		}
		if seen[src] {
			return service{}, fmt.Errorf("api: new %s: source %q configured twice", what, src)
		}
		seen[src] = true
	}
	o, err := newOptions(what, opts)
	if err != nil {
		return service{}, err
	}
	return service{sources: slices.Clone(sources), waiter: w, options: o}, nil
}

// resolveSource is the one check of a request's source: an unknown one is
// NOT_FOUND, an empty one is ifEmpty (the default source, or "" where a
// request without one means every source).
func resolveSource(op string, sources []string, requested, ifEmpty string) (string, error) {
	if requested == "" {
		return ifEmpty, nil
	}
	if slices.Contains(sources, requested) {
		return requested, nil
	}
	return "", status.Errorf(codes.NotFound, "%s: unknown source %q", op, requested)
}

// source resolves a request's source after its own fields' checks (the
// first error among them answers): empty is the default source.
func (s *service) source(op, requested string, checks ...error) (string, error) {
	for _, err := range checks {
		if err != nil {
			return "", err
		}
	}
	return resolveSource(op, s.sources, requested, s.sources[0])
}

// sourceOrAll resolves the source of a request about every source unless
// it names one: empty stays empty.
func (s *service) sourceOrAll(op, requested string) (string, error) {
	return resolveSource(op, s.sources, requested, "")
}

// listRequest is what every list request carries.
type listRequest interface {
	GetSource() string
	GetPageSize() int32
}

// listArgs resolves a list request's source and page size after its own
// fields' checks, in that order.
func (s *service) listArgs(op string, req listRequest, checks ...error) (source string, size int, err error) {
	if source, err = s.source(op, req.GetSource(), checks...); err != nil {
		return "", 0, err
	}
	if size, err = resolvePageSize(op, req.GetPageSize()); err != nil {
		return "", 0, err
	}
	return source, size, nil
}

// ReceiptService implements receiptdv1.ReceiptServiceServer over a Reader
// (the read models) and an EventLog (the log's history). Register it with
// receiptdv1.RegisterReceiptServiceServer. It is safe for concurrent use.
type ReceiptService struct {
	// Embedding the Unsafe interface instead of
	// UnimplementedReceiptServiceServer makes a new RPC in the proto a
	// compile error here rather than a silent UNIMPLEMENTED at run time.
	receiptdv1.UnsafeReceiptServiceServer

	reader Reader
	service
}

var _ receiptdv1.ReceiptServiceServer = (*ReceiptService)(nil)

// NewReceiptService returns the ReceiptService serving the read models r
// for the configured sources; the first source is the default a request
// with no source gets. ListReceiptEvents reads the log given WithEventLog
// (without it, it answers UNIMPLEMENTED).
func NewReceiptService(r Reader, sources []string, opts ...Option) (*ReceiptService, error) {
	if r == nil {
		return nil, errors.New("api: new receipt service: nil Reader")
	}
	svc, err := newService("receipt service", r, sources, opts)
	if err != nil {
		return nil, err
	}
	return &ReceiptService{reader: r, service: svc}, nil
}

// GetReceipt implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) GetReceipt(ctx context.Context, req *receiptdv1.GetReceiptRequest) (*receiptdv1.Receipt, error) {
	const op = "GetReceipt"
	source, err := s.source(op, req.GetSource(), validateID(op, "receipt_id", req.GetReceiptId()))
	if err != nil {
		return nil, err
	}
	return query(ctx, &s.service, op, fmt.Sprintf("receipt %q of source %q", req.GetReceiptId(), source), req.GetMinPosition(),
		func(ctx context.Context) (aggregate.ReceiptView, error) {
			return s.reader.Receipt(ctx, source, req.GetReceiptId())
		},
		s.receiptToProtoNow)
}

// ListUserReceipts implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) ListUserReceipts(ctx context.Context, req *receiptdv1.ListUserReceiptsRequest) (*receiptdv1.ListUserReceiptsResponse, error) {
	const op = "ListUserReceipts"
	source, size, err := s.listArgs(op, req, validateID(op, "user_id", req.GetUserId()))
	if err != nil {
		return nil, err
	}
	receipts, next, err := list(ctx, &s.service, op, fmt.Sprintf("receipts of user %q of source %q", req.GetUserId(), source), req.GetMinPosition(),
		func(ctx context.Context) ([]aggregate.ReceiptView, string, error) {
			return s.reader.UserReceipts(ctx, source, req.GetUserId(), size, req.GetPageToken())
		}, s.receiptToProtoNow)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.ListUserReceiptsResponse{Receipts: receipts, NextPageToken: next}, nil
}

// GetBalance implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) GetBalance(ctx context.Context, req *receiptdv1.GetBalanceRequest) (*receiptdv1.Balance, error) {
	const op = "GetBalance"
	source, err := s.source(op, req.GetSource(), validateID(op, "user_id", req.GetUserId()))
	if err != nil {
		return nil, err
	}
	return query(ctx, &s.service, op, fmt.Sprintf("balance of user %q of source %q", req.GetUserId(), source), req.GetMinPosition(),
		func(ctx context.Context) (*receiptdv1.Balance, error) {
			return s.balance(ctx, source, req.GetUserId())
		},
		func(b *receiptdv1.Balance) (*receiptdv1.Balance, error) { return b, nil })
}

// balance reads a user's balance view, marked forgotten if the user was
// (WithSubjects).
func (s *ReceiptService) balance(ctx context.Context, source, userID string) (*receiptdv1.Balance, error) {
	b, err := s.reader.Balance(ctx, source, userID)
	if err != nil {
		return nil, err
	}
	out, err := balanceToProto(b)
	if err != nil {
		return nil, err
	}
	if err := markIfForgotten(ctx, s.subjects, source, userID, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetEntity implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) GetEntity(ctx context.Context, req *receiptdv1.GetEntityRequest) (*receiptdv1.Entity, error) {
	const op = "GetEntity"
	source, err := s.source(op, req.GetSource(), validateKind(op, req.GetKind()), validateID(op, "entity_id", req.GetEntityId()))
	if err != nil {
		return nil, err
	}
	return query(ctx, &s.service, op, fmt.Sprintf("%s %q of source %q", req.GetKind(), req.GetEntityId(), source), req.GetMinPosition(),
		func(ctx context.Context) (*receiptdv1.Entity, error) {
			v, err := s.reader.Entity(ctx, source, req.GetKind(), req.GetEntityId())
			if err != nil {
				return nil, err
			}
			return openEntity(ctx, s.subjects, v)
		}, func(e *receiptdv1.Entity) (*receiptdv1.Entity, error) { return e, nil })
}

// ListEntities implements receiptdv1.ReceiptServiceServer.
func (s *ReceiptService) ListEntities(ctx context.Context, req *receiptdv1.ListEntitiesRequest) (*receiptdv1.ListEntitiesResponse, error) {
	const op = "ListEntities"
	source, size, err := s.listArgs(op, req, validateKind(op, req.GetKind()))
	if err != nil {
		return nil, err
	}
	entities, next, err := list(ctx, &s.service, op, fmt.Sprintf("entities of kind %q of source %q", req.GetKind(), source), req.GetMinPosition(),
		func(ctx context.Context) ([]projections.Entity, string, error) {
			return s.reader.Entities(ctx, source, req.GetKind(), size, req.GetPageToken())
		}, entityToProto)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.ListEntitiesResponse{Entities: entities, NextPageToken: next}, nil
}

// query is the skeleton of every read RPC once its request is checked and
// its source resolved: wait for min_position (bounded), read, convert.
// Every error goes through the status table as op's, on subject.
func query[V, P any](ctx context.Context, s *service, op, subject string, minPosition uint64,
	read func(context.Context) (V, error), convert func(V) (P, error),
) (P, error) {
	var zero P
	if err := s.waitFor(ctx, minPosition); err != nil {
		return zero, toStatus(ctx, s.log, op, subject, err)
	}
	v, err := read(ctx)
	if err != nil {
		return zero, toStatus(ctx, s.log, op, subject, err)
	}
	out, err := convert(v)
	if err != nil {
		return zero, toStatus(ctx, s.log, op, subject, err)
	}
	return out, nil
}

// page is one page of a list and the next page's token.
type page[T any] struct {
	items []T
	next  string
}

// list is query for a list RPC: read returns one page and the next page's
// token, and convert is applied to each item.
func list[V, P any](ctx context.Context, s *service, op, subject string, minPosition uint64,
	read func(context.Context) ([]V, string, error), convert func(V) (P, error),
) ([]P, string, error) {
	p, err := query(ctx, s, op, subject, minPosition,
		func(ctx context.Context) (page[V], error) {
			items, next, err := read(ctx)
			return page[V]{items, next}, err
		},
		func(in page[V]) (page[P], error) {
			out := page[P]{items: make([]P, 0, len(in.items)), next: in.next}
			for _, v := range in.items {
				item, err := convert(v)
				if err != nil {
					return page[P]{}, err
				}
				out.items = append(out.items, item)
			}
			return out, nil
		})
	return p.items, p.next, err
}

// waitFor waits, at most s.maxWait, for the read side to apply position.
func (s *service) waitFor(ctx context.Context, position uint64) error {
	return waitFor(ctx, s.waiter, s.maxWait, position)
}

// positionWaiter is what waitFor needs of a read side.
type positionWaiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// waitFor waits, at most maxWait, for r to apply position. Zero means the
// caller does not need to read its own write. The bounded wait running out
// is projections.ErrBehind whatever the Reader returned for it; the
// caller's own deadline or cancellation is reported as such.
func waitFor(ctx context.Context, r positionWaiter, maxWait time.Duration, position uint64) error {
	if position == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	err := r.WaitFor(wctx, position)
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("wait for position %d: %w", position, cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("wait for position %d: %w", position, projections.ErrBehind)
	}
	return fmt.Errorf("wait for position %d: %w", position, err)
}

func validateID(op, field, id string) error {
	switch {
	case id == "":
		return status.Errorf(codes.InvalidArgument, "%s: %s is required", op, field)
	case len(id) > MaxIDLength:
		return status.Errorf(codes.InvalidArgument, "%s: %s is longer than %d bytes", op, field, MaxIDLength)
	}
	return nil
}

// validateKind accepts an entity kind: a stream category such as "offer",
// made of ASCII letters, digits, "_" and ".".
func validateKind(op, kind string) error {
	switch {
	case kind == "":
		return status.Errorf(codes.InvalidArgument, "%s: kind is required", op)
	case len(kind) > MaxKindLength:
		return status.Errorf(codes.InvalidArgument, "%s: kind is longer than %d bytes", op, MaxKindLength)
	}
	for i := 0; i < len(kind); i++ {
		switch c := kind[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.':
		default:
			return status.Errorf(codes.InvalidArgument, "%s: kind may hold only ASCII letters, digits, \"_\" and \".\"", op)
		}
	}
	return nil
}

func resolvePageSize(op string, requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, status.Errorf(codes.InvalidArgument, "%s: page_size %d is negative", op, requested)
	case requested == 0:
		return DefaultPageSize, nil
	case requested > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(requested), nil
}
