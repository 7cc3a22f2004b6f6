package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// Destinations is the push side of the feed, for its admin RPCs:
// *feed.Pusher. Methods naming a destination return an error matching
// feed.ErrUnknownDestination for a name not configured.
type Destinations interface {
	Statuses(ctx context.Context) ([]feed.DestinationStatus, error)
	Pause(ctx context.Context, name string) (feed.DestinationStatus, error)
	Resume(ctx context.Context, name string) (feed.DestinationStatus, error)
	Redeliver(ctx context.Context, name string, after uint64) (feed.DestinationStatus, error)
	DeadLetters(ctx context.Context, name string) ([]feed.DeadLetter, error)
}

// FeedService implements receiptdv1.FeedServiceServer: the feed
// (Subscribe) over a feed.Source (the read models), and the destinations'
// admin RPCs over Destinations. Register it with
// receiptdv1.RegisterFeedServiceServer. It is safe for concurrent use.
type FeedService struct {
	receiptdv1.UnsafeFeedServiceServer

	src          feed.Source
	destinations Destinations
	render       *FeedRenderer
	every        time.Duration
	open         atomic.Int64
	service
}

var _ receiptdv1.FeedServiceServer = (*FeedService)(nil)

// FeedOption configures a FeedService beyond the shared Options.
type FeedOption func(*FeedService)

// WithDestinations gives the FeedService the push destinations its admin
// RPCs report on and control. Without it there are none.
func WithDestinations(d Destinations) FeedOption {
	return func(s *FeedService) { s.destinations = d }
}

// WithCheckpointEvery sets how often a subscriber is told the feed passed
// events it filtered out (feed.DefaultCheckpointEvery if not given).
func WithCheckpointEvery(d time.Duration) FeedOption {
	return func(s *FeedService) { s.every = d }
}

// NewFeedService returns the FeedService serving src for the configured
// sources. WithSubjects (among opts) shows forgotten users as such;
// WithLifetime ends open subscriptions with UNAVAILABLE when it is done.
func NewFeedService(src feed.Source, sources []string, opts []Option, feedOpts ...FeedOption) (*FeedService, error) {
	if src == nil {
		return nil, errors.New("api: new feed service: nil feed.Source")
	}
	svc, err := newService("feed service", nil, sources, opts)
	if err != nil {
		return nil, err
	}
	s := &FeedService{src: src, service: svc, render: NewFeedRenderer(svc.subjects)}
	for _, o := range feedOpts {
		o(s)
	}
	return s, nil
}

// Subscribers returns the number of subscriptions open now.
func (s *FeedService) Subscribers() int64 { return s.open.Load() }

// Subscribe implements receiptdv1.FeedServiceServer.
func (s *FeedService) Subscribe(req *receiptdv1.SubscribeRequest, stream grpc.ServerStreamingServer[receiptdv1.FeedEvent]) error {
	const op = "Subscribe"
	filter, err := s.filter(op, req)
	if err != nil {
		return err
	}
	if p, ok := RestrictedUser(stream.Context()); ok {
		for _, src := range filter.Sources {
			if len(p.Sources) > 0 && !slices.Contains(p.Sources, src) {
				return status.Errorf(codes.PermissionDenied, "%s: source %q is not open to this user", op, src)
			}
		}
		filter.User, filter.UserSources = p.ID, p.Sources
	}
	s.open.Add(1)
	defer s.open.Add(-1)

	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	stop := context.AfterFunc(s.lifetime, func() { cancel(errStopping) })
	defer stop()
	if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "1")); err != nil {
		return err
	}
	subject := fmt.Sprintf("the feed after position %d", req.GetAfterPosition())
	var sendErr error
	err = feed.Subscribe(ctx, s.src, feed.SubscribeOptions{After: req.GetAfterPosition(), Filter: filter, CheckpointEvery: s.every},
		func(e *feed.Event) error {
			m, err := s.render.Proto(ctx, e)
			if err != nil {
				return err
			}
			if sendErr = stream.Send(m); sendErr != nil {
				return sendErr
			}
			return nil
		},
		func(pos uint64) error {
			sendErr = stream.Send(&receiptdv1.FeedEvent{Position: pos, Kind: feed.KindCheckpoint, LogPosition: feed.LogPosition(pos)})
			return sendErr
		})
	switch {
	case sendErr != nil:
		return sendErr // the client left: its status is the transport's
	case errors.Is(context.Cause(ctx), errStopping):
		return status.Errorf(codes.Unavailable, "%s: the server is shutting down; subscribe again after the last position received", op)
	}
	return toStatus(ctx, s.log, op, subject, err)
}

// filter checks a subscription's kinds and sources.
func (s *FeedService) filter(op string, req *receiptdv1.SubscribeRequest) (feed.Filter, error) {
	var f feed.Filter
	for _, k := range req.GetKinds() {
		if !feed.KnownKind(k) {
			return f, status.Errorf(codes.InvalidArgument, "%s: unknown kind %q (kinds: %s)", op, k, strings.Join(feed.Kinds, ", "))
		}
		if !slices.Contains(f.Kinds, k) {
			f.Kinds = append(f.Kinds, k)
		}
	}
	for _, src := range req.GetSources() {
		if src == "" {
			return f, status.Errorf(codes.InvalidArgument, "%s: an empty source", op)
		}
		if _, err := resolveSource(op, s.sources, src, ""); err != nil {
			return f, err
		}
		if !slices.Contains(f.Sources, src) {
			f.Sources = append(f.Sources, src)
		}
	}
	return f, nil
}

// ListDestinations implements receiptdv1.FeedServiceServer.
func (s *FeedService) ListDestinations(ctx context.Context, _ *receiptdv1.ListDestinationsRequest) (*receiptdv1.ListDestinationsResponse, error) {
	const op = "ListDestinations"
	out := &receiptdv1.ListDestinationsResponse{Destinations: []*receiptdv1.Destination{}}
	if s.destinations == nil {
		return out, nil
	}
	st, err := s.destinations.Statuses(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, "the destinations", err)
	}
	for _, d := range st {
		out.Destinations = append(out.Destinations, destinationToProto(d))
	}
	return out, nil
}

// destinationCall is the skeleton of the RPCs on one destination.
func (s *FeedService) destinationCall(ctx context.Context, op, name string, call func(Destinations) (feed.DestinationStatus, error)) (*receiptdv1.Destination, error) {
	if err := validateID(op, "name", name); err != nil {
		return nil, err
	}
	subject := fmt.Sprintf("destination %q", name)
	if s.destinations == nil {
		return nil, toStatus(ctx, s.log, op, subject, feed.ErrUnknownDestination)
	}
	d, err := call(s.destinations)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	return destinationToProto(d), nil
}

// PauseDestination implements receiptdv1.FeedServiceServer.
func (s *FeedService) PauseDestination(ctx context.Context, req *receiptdv1.PauseDestinationRequest) (*receiptdv1.Destination, error) {
	return s.destinationCall(ctx, "PauseDestination", req.GetName(), func(d Destinations) (feed.DestinationStatus, error) {
		return d.Pause(ctx, req.GetName())
	})
}

// ResumeDestination implements receiptdv1.FeedServiceServer.
func (s *FeedService) ResumeDestination(ctx context.Context, req *receiptdv1.ResumeDestinationRequest) (*receiptdv1.Destination, error) {
	return s.destinationCall(ctx, "ResumeDestination", req.GetName(), func(d Destinations) (feed.DestinationStatus, error) {
		return d.Resume(ctx, req.GetName())
	})
}

// RedeliverDestination implements receiptdv1.FeedServiceServer.
func (s *FeedService) RedeliverDestination(ctx context.Context, req *receiptdv1.RedeliverDestinationRequest) (*receiptdv1.Destination, error) {
	return s.destinationCall(ctx, "RedeliverDestination", req.GetName(), func(d Destinations) (feed.DestinationStatus, error) {
		return d.Redeliver(ctx, req.GetName(), req.GetAfterPosition())
	})
}

// ListDeadLetters implements receiptdv1.FeedServiceServer.
func (s *FeedService) ListDeadLetters(ctx context.Context, req *receiptdv1.ListDeadLettersRequest) (*receiptdv1.ListDeadLettersResponse, error) {
	const op = "ListDeadLetters"
	if err := validateID(op, "name", req.GetName()); err != nil {
		return nil, err
	}
	subject := fmt.Sprintf("destination %q", req.GetName())
	if s.destinations == nil {
		return nil, toStatus(ctx, s.log, op, subject, feed.ErrUnknownDestination)
	}
	dl, err := s.destinations.DeadLetters(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	out := &receiptdv1.ListDeadLettersResponse{DeadLetters: make([]*receiptdv1.DeadLetter, 0, len(dl))}
	for _, d := range dl {
		out.DeadLetters = append(out.DeadLetters, &receiptdv1.DeadLetter{
			Position: d.Position, EventId: d.EventID, Kind: d.Kind, Attempts: int32(min(d.Attempts, 1<<31-1)),
			LastError: d.LastError, At: optionalTime(d.At), Outcome: d.Outcome,
		})
	}
	return out, nil
}

func destinationToProto(d feed.DestinationStatus) *receiptdv1.Destination {
	return &receiptdv1.Destination{
		Name: d.Name, Url: d.URL, Kinds: slices.Clone(d.Kinds), Sources: slices.Clone(d.Sources),
		Paused: d.Paused, PausedReason: d.PausedReason,
		DeliveredPosition: d.Delivered, HeadPosition: d.Head, LagPositions: d.LagPositions, Lag: durationpb.New(d.Lag),
		Attempts: d.Attempts, Failures: d.Failures, ConsecutiveFailures: int32(min(d.Consecutive, 1<<31-1)),
		LastError: d.LastError, LastFailureAt: optionalTime(d.LastFailureAt), LastSuccessAt: optionalTime(d.LastSuccessAt),
		NextAttemptAt: optionalTime(d.NextAttemptAt), DeadLetters: int32(min(d.DeadLetters, 1<<31-1)),
	}
}

// optionalTime is t as a Timestamp, nil for the zero time.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FeedRenderer renders feed events as the API shows them: the resolved
// view converted as GetReceipt, GetBalance and ListEntities convert it,
// a forgotten user's balance (and an entity about a forgotten person)
// marked forgotten. The push destinations get its JSON.
type FeedRenderer struct {
	subjects Subjects
}

// NewFeedRenderer returns a renderer; subjects may be nil (no privacy:
// nobody shows as forgotten).
func NewFeedRenderer(subjects Subjects) *FeedRenderer { return &FeedRenderer{subjects: subjects} }

// feedJSON are the JSON options of the feed's rendering, the gateway's:
// lowerCamelCase names, enum names, every field present.
var feedJSON = protojson.MarshalOptions{EmitUnpopulated: true}

// JSON renders e as the body of a push and the data of a Server-Sent
// Event: the FeedEvent message in the REST API's JSON.
func (r *FeedRenderer) JSON(ctx context.Context, e *feed.Event) ([]byte, error) {
	m, err := r.Proto(ctx, e)
	if err != nil {
		return nil, err
	}
	return feedJSON.Marshal(m)
}

// Proto renders e as a FeedEvent.
func (r *FeedRenderer) Proto(ctx context.Context, e *feed.Event) (*receiptdv1.FeedEvent, error) {
	out := &receiptdv1.FeedEvent{
		Position: e.Position, Id: e.ID, Kind: e.Kind, LogPosition: e.LogPosition(), Source: e.Source,
		UserIds: slices.Clone(e.UserIDs), ReceiptId: e.ReceiptID, UserId: e.UserID, EntityKind: e.EntityKind, EntityId: e.EntityID,
		Anomalies: make([]*receiptdv1.Anomaly, 0, len(e.Anomalies)), RecordedAt: timestamppb.New(e.RecordedAt),
	}
	if out.UserIds == nil {
		out.UserIds = []string{}
	}
	var err error
	if e.Stage != "" {
		if out.Stage, err = stageToProto(e.Stage); err != nil {
			return nil, fmt.Errorf("render feed event %s: %w", e.ID, err)
		}
	}
	for _, a := range e.Anomalies {
		out.Anomalies = append(out.Anomalies, &receiptdv1.Anomaly{Kind: a.Kind, Detail: a.Detail})
	}
	if e.OccurredAt != nil {
		out.OccurredAt = timestamppb.New(*e.OccurredAt)
	}
	switch e.ViewOf {
	case feed.ViewReceipt:
		var v aggregate.ReceiptView
		if err = json.Unmarshal(e.View, &v); err == nil {
			out.Receipt, err = receiptToProto(v)
		}
	case feed.ViewBalance:
		var v projections.Balance
		if err = json.Unmarshal(e.View, &v); err == nil {
			if out.Balance, err = balanceToProto(v); err == nil {
				err = markIfForgotten(ctx, r.subjects, v.Source, v.UserID, out.Balance)
			}
		}
	case feed.ViewEntity:
		var v projections.Entity
		if err = json.Unmarshal(e.View, &v); err == nil {
			v.Timeline = nil
			if out.Entity, err = entityToProto(v); err == nil {
				out.Entity.Forgotten, err = entityForgotten(ctx, r.subjects, v)
			}
		}
	default:
		err = fmt.Errorf("view of %q: %w", e.ViewOf, feed.ErrBadEvent)
	}
	if err != nil {
		return nil, fmt.Errorf("render feed event %s at %d: %w", e.ID, e.Position, err)
	}
	return out, nil
}

// markIfForgotten marks a user's balance forgotten if the user was.
func markIfForgotten(ctx context.Context, subjects Subjects, source, userID string, b *receiptdv1.Balance) error {
	if subjects == nil {
		return nil
	}
	sub := privacy.Subject{Source: source, ID: userID}
	if sub.Check() != nil {
		return nil // no subject can have such an id
	}
	at, err := subjects.Forgotten(ctx, sub)
	if err != nil {
		return err
	}
	if !at.IsZero() {
		markForgotten(b, timestamppb.New(at))
	}
	return nil
}

// entityForgotten reports whether the person an entity is about (its user,
// or itself when it is a person: a customer, an account, a user) was
// forgotten: the feed's entity has no timeline to tell it by.
func entityForgotten(ctx context.Context, subjects Subjects, v projections.Entity) (bool, error) {
	if subjects == nil {
		return false, nil
	}
	ids := []string{v.UserID}
	if v.Kind == aggregate.CategoryCustomer || v.Kind == aggregate.CategoryAccount || v.Kind == aggregate.CategoryUser {
		ids = append(ids, v.ID)
	}
	for _, id := range ids {
		sub := privacy.Subject{Source: v.Source, ID: id}
		if id == "" || sub.Check() != nil {
			continue
		}
		at, err := subjects.Forgotten(ctx, sub)
		if err != nil {
			return false, err
		}
		if !at.IsZero() {
			return true, nil
		}
	}
	return false, nil
}
