package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// ErrPrivacyNotConfigured: a privacy request to a server without a privacy
// section: personal data is stored in the clear and cannot be forgotten.
var ErrPrivacyNotConfigured = errors.New("api: privacy is not configured")

// Subjects is what the API needs of the data keys personal data is sealed
// under: a *privacy.Keyring.
type Subjects interface {
	privacy.Opener
	// Forget destroys the subject's current key.
	Forget(ctx context.Context, s privacy.Subject) ([]privacy.KeyID, time.Time, error)
	// Forgotten returns when the subject was last forgotten (zero if never).
	Forgotten(ctx context.Context, s privacy.Subject) (time.Time, error)
	// Current returns the subject's current key id, if it has one.
	Current(ctx context.Context, s privacy.Subject) (privacy.KeyID, bool, error)
	// Pseudonym names a subject known by personal data (an e-mail).
	Pseudonym(kind, value string) string
}

var _ Subjects = (*privacy.Keyring)(nil)

// WithSubjects gives a ReceiptService the data keys it opens personal
// fields with and asks whether a user was forgotten (Balance.forgotten,
// EntityEvent.forgotten). Without it nothing is opened and nobody shows as
// forgotten: what a server without privacy shows.
func WithSubjects(s Subjects) Option {
	return func(o *options) { o.subjects = s }
}

// WithUserNamespaces maps a source to the user id namespace its subjects
// belong to, where it is another source's (Reward's user_namespace): a
// privacy request naming the source is about the namespace's subject.
func WithUserNamespaces(m map[string]string) Option {
	return func(o *options) { o.namespaces = m }
}

// PrivacyService implements receiptdv1.PrivacyServiceServer: a subject's
// erasure (ForgetSubject) and export (ExportSubject). Register it with
// receiptdv1.RegisterPrivacyServiceServer. It is safe for concurrent use.
type PrivacyService struct {
	receiptdv1.UnsafePrivacyServiceServer

	store  eventstore.Store
	reader Reader
	clock  func() time.Time
	service
}

var _ receiptdv1.PrivacyServiceServer = (*PrivacyService)(nil)

// NewPrivacyService returns the PrivacyService of the log, the read models
// r and the sources; WithSubjects gives it the data keys (without them
// ForgetSubject answers FAILED_PRECONDITION, and ExportSubject finds the
// events that name the subject in the clear only).
func NewPrivacyService(log eventstore.Store, r Reader, sources []string, opts ...Option) (*PrivacyService, error) {
	if log == nil || r == nil {
		return nil, errors.New("api: new privacy service: nil log or Reader")
	}
	svc, err := newService("privacy service", r, sources, opts)
	if err != nil {
		return nil, err
	}
	return &PrivacyService{store: log, reader: r, clock: time.Now, service: svc}, nil
}

// subjectRequest is what both requests carry.
type subjectRequest interface {
	GetSource() string
	GetSubjectId() string
}

// subject resolves a request's subject: the source's user id namespace,
// and the id, as its pseudonym when it is an e-mail address.
func (s *PrivacyService) subject(op string, req subjectRequest) (privacy.Subject, error) {
	source, err := s.source(op, req.GetSource(), validateID(op, "subject_id", req.GetSubjectId()))
	if err != nil {
		return privacy.Subject{}, err
	}
	if ns := s.namespaces[source]; ns != "" {
		source = ns
	}
	sub := privacy.Subject{Source: source, ID: req.GetSubjectId()}
	if strings.Contains(sub.ID, "@") || sub.Check() != nil {
		if s.subjects == nil {
			return privacy.Subject{}, status.Errorf(codes.FailedPrecondition, "%s: a subject named by an e-mail address needs privacy configured", op)
		}
		kind := "id"
		if strings.Contains(sub.ID, "@") {
			kind = "email"
		}
		sub.ID = s.subjects.Pseudonym(kind, sub.ID)
	}
	return sub, nil
}

// SubjectStream returns the stream of a subject's privacy record.
func SubjectStream(sub privacy.Subject) string {
	return aggregate.StreamID(aggregate.CategorySubject, sub.Source, sub.ID)
}

// ForgetSubject implements receiptdv1.PrivacyServiceServer. The
// subject.forgotten.v1 event naming the key is appended first, then the
// key destroyed: a failure in between leaves a record of a forget to
// repeat, never a key destroyed without one.
func (s *PrivacyService) ForgetSubject(ctx context.Context, req *receiptdv1.ForgetSubjectRequest) (*receiptdv1.ForgetSubjectResponse, error) {
	const op = "ForgetSubject"
	sub, err := s.subject(op, req)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("subject %q of source %q", sub.ID, sub.Source)
	if s.subjects == nil {
		return nil, toStatus(ctx, s.log, op, what, ErrPrivacyNotConfigured)
	}
	cur, has, err := s.subjects.Current(ctx, sub)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, what, err)
	}
	var planned []privacy.KeyID
	if has {
		planned = append(planned, cur)
	}
	pos, err := s.recordForget(ctx, sub, planned, s.clock().UTC())
	if err != nil {
		return nil, toStatus(ctx, s.log, op, what, err)
	}
	ids, at, err := s.subjects.Forget(ctx, sub)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, what, err)
	}
	// Another node created a key in between: record that one too.
	var extra []privacy.KeyID
	for _, id := range ids {
		if !slices.Contains(planned, id) {
			extra = append(extra, id)
		}
	}
	if len(extra) > 0 {
		if pos, err = s.recordForget(ctx, sub, extra, at); err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
	}
	out := &receiptdv1.ForgetSubjectResponse{
		Source: sub.Source, SubjectId: sub.ID, DestroyedKeyIds: make([]string, 0, len(ids)),
		ForgottenAt: timestamppb.New(at), Position: pos.Commit,
	}
	for _, id := range ids {
		out.DestroyedKeyIds = append(out.DestroyedKeyIds, id.String())
	}
	who := "unknown"
	if p, ok := PrincipalFromContext(ctx); ok {
		who = p.ID
	}
	s.log.InfoContext(ctx, "forgot a subject", "source", sub.Source, "subject", sub.ID, "keys_destroyed", len(ids), "position", pos.Commit, "by", who)
	return out, nil
}

// recordForget appends a subject.forgotten.v1 event.
func (s *PrivacyService) recordForget(ctx context.Context, sub privacy.Subject, ids []privacy.KeyID, at time.Time) (eventstore.Position, error) {
	d := aggregate.SubjectForgotten{Source: sub.Source, SubjectID: sub.ID, KeyIDs: []string{}, ForgottenAt: at}
	for _, id := range ids {
		d.KeyIDs = append(d.KeyIDs, id.String())
	}
	data, err := json.Marshal(d)
	if err != nil {
		return eventstore.Position{}, err
	}
	id := uuid.NewString()
	meta, err := json.Marshal(aggregate.Metadata{Source: sub.Source, ReceivedAt: at, Scheme: "api", CorrelationID: id, CausationID: id})
	if err != nil {
		return eventstore.Position{}, err
	}
	res, err := s.store.Append(ctx, SubjectStream(sub), eventstore.Any,
		aggregate.Event{ID: id, Type: aggregate.TypeSubjectForgotten, Data: data, Metadata: meta})
	return res.Position, err
}

// exportPage is how many events ExportSubject reads from the log at a
// time.
const exportPage = 1000

// ExportSubject implements receiptdv1.PrivacyServiceServer: one scan of
// the log for the subject's events (sealed under any key the subject ever
// had, or naming the subject in the clear), then the views they lead to.
func (s *PrivacyService) ExportSubject(ctx context.Context, req *receiptdv1.ExportSubjectRequest) (*receiptdv1.ExportSubjectResponse, error) {
	const op = "ExportSubject"
	sub, err := s.subject(op, req)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("subject %q of source %q", sub.ID, sub.Source)
	out := &receiptdv1.ExportSubjectResponse{Source: sub.Source, SubjectId: sub.ID, ExportedAt: timestamppb.New(s.clock())}

	// Every key the subject had: the current one, and those its forgets
	// destroyed (their ids are in the log).
	keys := map[privacy.KeyID]bool{}
	if s.subjects != nil {
		if id, ok, err := s.subjects.Current(ctx, sub); err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		} else if ok {
			keys[id] = true
		}
	}
	record, err := s.store.ReadStream(ctx, SubjectStream(sub), 0, 0)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, what, err)
	}
	for _, e := range record {
		var d aggregate.SubjectForgotten
		if e.Type != aggregate.TypeSubjectForgotten || json.Unmarshal(e.Data, &d) != nil {
			continue
		}
		for _, k := range d.KeyIDs {
			if id, err := privacy.ParseKeyID(k); err == nil {
				keys[id] = true
			}
		}
		out.ForgottenAt = timestamppb.New(d.ForgottenAt)
	}

	type entityKey struct{ source, kind, id string }
	var entities []entityKey
	for after := eventstore.Start; ; {
		page, err := s.store.ReadAll(ctx, after, exportPage)
		if err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
		for _, e := range page {
			ent, ok := s.matches(e, sub, keys)
			if !ok {
				continue
			}
			ev, err := s.exportEvent(ctx, e)
			if err != nil {
				return nil, toStatus(ctx, s.log, op, what, err)
			}
			out.Events = append(out.Events, ev)
			if ent != nil {
				k := entityKey{ent.Source, ent.Kind, ent.EntityID}
				if !slices.Contains(entities, k) {
					entities = append(entities, k)
				}
			}
		}
		if len(page) < exportPage {
			break
		}
		after = page[len(page)-1].Position
	}

	// The views: the subject as a user, their receipts, the entities.
	switch b, err := s.reader.Balance(ctx, sub.Source, sub.ID); {
	case err == nil:
		if out.Balance, err = balanceToProto(b); err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
		markForgotten(out.Balance, out.ForgottenAt)
	case !errors.Is(err, projections.ErrNotFound):
		return nil, toStatus(ctx, s.log, op, what, err)
	}
	for token := ""; ; {
		views, next, err := s.reader.UserReceipts(ctx, sub.Source, sub.ID, MaxPageSize, token)
		if errors.Is(err, projections.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
		for _, v := range views {
			r, err := receiptToProto(v)
			if err != nil {
				return nil, toStatus(ctx, s.log, op, what, err)
			}
			out.Receipts = append(out.Receipts, r)
		}
		if next == "" {
			break
		}
		token = next
	}
	for _, k := range entities {
		v, err := s.reader.Entity(ctx, k.source, k.kind, k.id)
		if errors.Is(err, projections.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
		pe, err := openEntity(ctx, s.subjects, v)
		if err != nil {
			return nil, toStatus(ctx, s.log, op, what, err)
		}
		out.Entities = append(out.Entities, pe)
	}
	return out, nil
}

// openEntity converts an entity view with its timeline, opening each
// event's sealed personal attributes with subjects (nil: left sealed, so
// not shown); an event whose key was destroyed is marked forgotten, and so
// is the entity.
func openEntity(ctx context.Context, subjects Subjects, v projections.Entity) (*receiptdv1.Entity, error) {
	out, err := entityToProto(v)
	if err != nil {
		return nil, err
	}
	if subjects == nil {
		return out, nil
	}
	for i, ev := range v.Timeline {
		if len(ev.Sealed) == 0 {
			continue
		}
		pe := out.Timeline[i]
		forgotten, err := openEntityAttributes(ctx, subjects, &pe.Attributes, ev.Sealed)
		if err != nil {
			return nil, err
		}
		if forgotten {
			pe.Forgotten, out.Forgotten = true, true
		}
	}
	return out, nil
}

// markForgotten sets a balance's forgotten fields.
func markForgotten(b *receiptdv1.Balance, at *timestamppb.Timestamp) {
	if at != nil {
		b.Forgotten, b.ForgottenAt = true, at
	}
}

// matches reports whether e is one of the subject's events: sealed under
// one of its keys, its privacy record, or an event that names it in the
// clear (its user id; for an entity event, its entity id when the entity
// is a person: a customer, an account, a user). An entity event's fact is
// returned, for its view.
func (s *PrivacyService) matches(e eventstore.RecordedEvent, sub privacy.Subject, keys map[privacy.KeyID]bool) (*aggregate.EntityEventRecorded, bool) {
	if e.Stream == SubjectStream(sub) {
		return nil, true
	}
	sealed := false
	for _, id := range eventcodec.SealedKeys(e.Event) {
		sealed = sealed || keys[id]
	}
	switch eventcodec.Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		f, err := eventcodec.StageRecorded(e.Event)
		return nil, sealed || err == nil && f.Source == sub.Source && f.UserID == sub.ID
	case aggregate.TypeUserEnrolled:
		f, err := eventcodec.UserEnrolled(e.Event)
		return nil, sealed || err == nil && f.Source == sub.Source && f.UserID == sub.ID
	case aggregate.TypeUserPointsCredited:
		f, err := eventcodec.PointsCredited(e.Event)
		return nil, sealed || err == nil && (f.Source == sub.Source || f.BalanceSource == sub.Source) && f.UserID == sub.ID
	case aggregate.TypeEntityEventRecorded:
		f, err := eventcodec.EntityEventRecorded(e.Event)
		if err != nil {
			return nil, sealed
		}
		person := f.Kind == aggregate.CategoryCustomer || f.Kind == aggregate.CategoryAccount || f.Kind == aggregate.CategoryUser
		if sealed || f.Source == sub.Source && (f.UserID == sub.ID || person && f.EntityID == sub.ID) {
			return &f, true
		}
		return nil, false
	}
	return nil, sealed
}

// exportEvent is one event as the export shows it: its normalized data
// with the personal fields opened, its delivery and its raw body.
func (s *PrivacyService) exportEvent(ctx context.Context, e eventstore.RecordedEvent) (*receiptdv1.ExportedEvent, error) {
	out := &receiptdv1.ExportedEvent{
		Position: e.Position.Commit, Stream: e.Stream, Revision: e.Revision, EventId: e.ID, EventType: e.Type,
	}
	var err error
	if out.RecordedAt, err = timestampToProto("recorded_at", &e.RecordedAt); err != nil {
		return nil, err
	}
	if m, err := eventcodec.Metadata(e.Event); err == nil {
		if out.Delivery, err = deliveryToProto(projections.EventMeta{
			ProviderEventType: m.ProviderEventType, DeliveryID: m.DeliveryID, ReceivedAt: m.ReceivedAt,
			Scheme: m.Scheme, KeyID: m.KeyID, BodySHA256: m.BodySHA256, Correction: m.Correction,
		}); err != nil {
			return nil, err
		}
	}
	var opener privacy.Opener
	if s.subjects != nil {
		opener = s.subjects
	}
	data, forgotten, err := s.normalized(ctx, opener, e)
	if err != nil {
		return nil, err
	}
	out.Forgotten = forgotten
	if data != nil {
		if out.Normalized, err = structOf(data); err != nil {
			return nil, err
		}
	}
	if data == nil || e.Type == aggregate.TypeSubjectForgotten {
		return out, nil // no provider body
	}
	raw, bodyForgotten, err := eventcodec.OpenRawBody(ctx, opener, e.Event)
	if err != nil {
		return nil, err
	}
	out.Forgotten = out.Forgotten || bodyForgotten
	if utf8.Valid(raw) {
		out.RawBody = string(raw)
	} else {
		out.RawBodyBytes = raw
	}
	return out, nil
}

// normalized returns e's normalized data with its personal fields opened,
// as the value to render (Raw and Sealed left out).
func (s *PrivacyService) normalized(ctx context.Context, o privacy.Opener, e eventstore.RecordedEvent) (any, bool, error) {
	switch eventcodec.Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		f, err := eventcodec.StageRecorded(e.Event)
		return f, false, err
	case aggregate.TypeUserEnrolled:
		f, err := eventcodec.UserEnrolled(e.Event)
		if err != nil {
			return nil, false, err
		}
		p, forgotten, err := eventcodec.OpenPersonal(ctx, o, f.Sealed)
		if err != nil {
			return nil, false, err
		}
		f.Sealed = nil
		if p.Email != "" {
			f.Email = p.Email
		}
		return f, forgotten, nil
	case aggregate.TypeUserPointsCredited:
		f, err := eventcodec.PointsCredited(e.Event)
		return f, false, err
	case aggregate.TypeDeliveryQuarantined:
		f, err := eventcodec.Quarantined(e.Event)
		return f, false, err
	case aggregate.TypeEntityEventRecorded:
		f, err := eventcodec.EntityEventRecorded(e.Event)
		if err != nil {
			return nil, false, err
		}
		forgotten, err := openEntityAttributes(ctx, o, &f.Attributes, f.Sealed)
		f.Sealed = nil
		return f, forgotten, err
	case aggregate.TypeSubjectForgotten:
		var d aggregate.SubjectForgotten
		err := json.Unmarshal(e.Data, &d)
		return d, false, err
	}
	return nil, false, nil
}

// openEntityAttributes opens an entity event's sealed personal attributes
// into attrs (a new map: the one given may be shared), reporting whether
// they were forgotten.
func openEntityAttributes(ctx context.Context, o privacy.Opener, attrs *map[string]string, sealed []byte) (bool, error) {
	if len(sealed) == 0 {
		return false, nil
	}
	p, forgotten, err := eventcodec.OpenPersonal(ctx, o, sealed)
	if err != nil || forgotten {
		return forgotten, err
	}
	merged := make(map[string]string, len(*attrs)+len(p.Attributes))
	for k, v := range *attrs {
		merged[k] = v
	}
	for k, v := range p.Attributes {
		merged[k] = v
	}
	*attrs = merged
	return false, nil
}

// structOf renders v as receiptd's JSON of it, as a Struct.
func structOf(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return structpb.NewStruct(m)
}
