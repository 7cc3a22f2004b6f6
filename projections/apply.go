package projections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// receiptRecord is a receipt's stored view plus what its index entries need.
type receiptRecord struct {
	View aggregate.ReceiptView `json:"view"`
	// FirstPosition is the commit position of the receipt's first applied
	// event: the stable sort key of the user's receipt list.
	FirstPosition uint64 `json:"first_position"`
	// LastPosition is the commit position of the last event applied to it.
	LastPosition uint64 `json:"last_position"`
}

// userRecord is a user's stored balance state.
type userRecord struct {
	Totals aggregate.Totals `json:"totals"`
	// Credited is the sum of the credits to the user (schema 2).
	Credited   decimal.Decimal     `json:"credited"`
	Reported   *aggregate.Snapshot `json:"reported,omitempty"`
	Enrolled   bool                `json:"enrolled"`
	EnrolledAt *time.Time          `json:"enrolled_at,omitempty"`
	// CreditAnomalies counts the credits to the user whose points are
	// outside the sanity bounds (schema 4).
	CreditAnomalies int64 `json:"credit_anomalies,omitempty"`
}

func (u userRecord) balance(source, userID string) Balance {
	b := Balance{
		Source:             source,
		UserID:             userID,
		Reported:           u.Reported,
		AwardedPoints:      u.Totals.Points,
		CreditedPoints:     u.Credited,
		DerivedPoints:      u.Totals.Points.Add(u.Credited),
		ReceiptsCompleted:  u.Totals.Completed,
		ReceiptsFailed:     u.Totals.Failed,
		ReceiptsInProgress: u.Totals.InProgress,
		TotalCO2e:          u.Totals.CO2e,
		TotalGreenProducts: u.Totals.GreenProducts,
		TotalHealthPoints:  u.Totals.HealthPoints,
		Enrolled:           u.Enrolled,
		AmountAnomalies:    u.Totals.AmountAnomalies + u.CreditAnomalies,
	}
	// The snapshot's provider knows its awards, not other sources' credits:
	// see Balance.Reconciled.
	b.Reconciled = u.Reported == nil || u.Reported.LifetimePoints.Equal(b.AwardedPoints)
	return b
}

// entityRecord is an entity's stored view (without its timeline) and the
// ranks of the events its status, amount and user were taken from.
type entityRecord struct {
	View Entity `json:"view"`
	// First is the position of the entity's first event: the entity's
	// prefix in bucketEntityTimeline and its key in bucketEntityIndex.
	First      eventstore.Position `json:"first"`
	StatusRank *rank               `json:"status_rank,omitempty"`
	AmountRank *rank               `json:"amount_rank,omitempty"`
	UserRank   *rank               `json:"user_rank,omitempty"`
}

// rank orders the events an entity's status (or amount, or user) may come
// from; see Entity for the rules.
type rank struct {
	// At is the provider's time the rank orders by: StatusAt for the
	// status; OccurredAt, else StatusAt, for the amount and the user.
	At         *time.Time          `json:"at,omitempty"`
	BodySHA256 string              `json:"body_sha256"`
	Position   eventstore.Position `json:"position"`
}

// outranks reports whether r's event wins over s's. Events with a time
// rank above those without; among those, the later time, then the greater
// body hash (then, for one body recorded twice, the later position) wins;
// among those without, the later position wins.
func (r rank) outranks(s rank) bool {
	switch {
	case (r.At != nil) != (s.At != nil):
		return r.At != nil
	case r.At != nil && !r.At.Equal(*s.At):
		return r.At.After(*s.At)
	case r.At != nil && r.BodySHA256 != s.BodySHA256:
		return r.BodySHA256 > s.BodySHA256
	case r.Position != s.Position:
		return s.Position.Less(r.Position)
	default:
		return r.BodySHA256 > s.BodySHA256
	}
}

// chooses records candidate in *current if it outranks it (or there is
// none), reporting whether it did.
func chooses(current **rank, candidate rank) bool {
	if *current != nil && !candidate.outranks(**current) {
		return false
	}
	*current = &candidate
	return true
}

// quarantineRecord is one entry of the quarantine list.
type quarantineRecord struct {
	Position          uint64 `json:"position"`
	ProviderEventType string `json:"provider_event_type,omitempty"`
	Reason            string `json:"reason"`
	BodySHA256        string `json:"body_sha256"`
}

// applier applies events inside one write transaction.
type applier struct {
	tx *bolt.Tx
	// touched collects the keys of the receipt and balance views the
	// events changed (or may have), for watchers.
	touched map[Key]struct{}
	// stats holds the statistics records the batch changed, until
	// flushStats writes them (see statsAdd); users the users' balance
	// states it read or changed, until flushUsers.
	stats map[string]*statsEntry
	users map[string]*userEntry
}

func (a applier) touch(k Key) {
	if a.touched != nil {
		a.touched[k] = struct{}{}
	}
}

func (a applier) apply(e eventstore.RecordedEvent) error {
	switch eventcodec.Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		f, err := eventcodec.StageRecorded(e.Event)
		if err != nil {
			return fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
		}
		return a.stageRecorded(e, f)
	case aggregate.TypeUserEnrolled:
		f, err := eventcodec.UserEnrolled(e.Event)
		if err != nil {
			return fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
		}
		return a.userEnrolled(f)
	case aggregate.TypeDeliveryQuarantined:
		q, err := eventcodec.Quarantined(e.Event)
		if err != nil {
			return fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
		}
		k := make([]byte, 0, len(q.Source)+9)
		k = append(append(k, q.Source...), 0)
		k = binary.BigEndian.AppendUint64(k, e.Position.Commit)
		return putJSON(a.tx.Bucket(bucketQuarantine), k, quarantineRecord{
			Position: e.Position.Commit, ProviderEventType: q.ProviderEventType, Reason: q.Reason, BodySHA256: q.BodySHA256,
		})
	case aggregate.TypeUserPointsCredited:
		c, err := eventcodec.PointsCredited(e.Event)
		if err != nil {
			return fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
		}
		return a.pointsCredited(e, c)
	case aggregate.TypeEntityEventRecorded:
		f, err := eventcodec.EntityEventRecorded(e.Event)
		if err != nil {
			return fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
		}
		return a.entityEvent(e, f)
	default:
		// Event types of later versions or of other read models: nothing to do.
		return nil
	}
}

func (a applier) stageRecorded(e eventstore.RecordedEvent, f aggregate.StageRecorded) error {
	if f.Source == "" || f.ReceiptID == "" {
		return fmt.Errorf("%s at %s names no source or receipt: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	rk := key(f.Source, f.ReceiptID)
	factsB, receiptsB := a.tx.Bucket(bucketReceiptFacts), a.tx.Bucket(bucketReceipts)

	r := aggregate.NewReceipt(f.Source, f.ReceiptID)
	var facts []aggregate.StageRecorded
	if err := getJSON(factsB, rk, &facts); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("receipt %s facts: %w", f.ReceiptID, err)
	}
	for _, old := range facts {
		if _, err := r.Add(old); err != nil {
			return err
		}
	}
	added, err := r.Add(f)
	if err != nil {
		return err
	}
	if !added {
		return nil // the same fact twice in the log: the view is unchanged
	}
	if err := putJSON(factsB, rk, r.Facts()); err != nil {
		return err
	}

	var rec receiptRecord
	existed := true
	if err := getJSON(receiptsB, rk, &rec); errors.Is(err, ErrNotFound) {
		existed = false
		rec.FirstPosition = e.Position.Commit
	} else if err != nil {
		return err
	}
	old := rec.View
	rec.View = r.View()
	rec.LastPosition = e.Position.Commit
	if err := putJSON(receiptsB, rk, rec); err != nil {
		return err
	}
	a.touch(ReceiptKey(f.Source, f.ReceiptID))

	// Every user a fact names has a balance view.
	if f.UserID != "" {
		if err := a.updateUser(f.Source, f.UserID, func(*userRecord) {}); err != nil {
			return err
		}
	}
	// Move the receipt's contribution from its old owner to its new one.
	if existed && old.UserID != "" {
		if err := a.updateUser(f.Source, old.UserID, func(u *userRecord) { u.Totals.Add(old, -1) }); err != nil {
			return err
		}
		if old.UserID != rec.View.UserID {
			if err := a.tx.Bucket(bucketUserReceipts).Delete(indexKey(f.Source, old.UserID, rec.FirstPosition, f.ReceiptID)); err != nil {
				return err
			}
		}
	}
	if rec.View.UserID != "" {
		if err := a.updateUser(f.Source, rec.View.UserID, func(u *userRecord) { u.Totals.Add(rec.View, +1) }); err != nil {
			return err
		}
		if err := a.tx.Bucket(bucketUserReceipts).Put(indexKey(f.Source, rec.View.UserID, rec.FirstPosition, f.ReceiptID), nil); err != nil {
			return err
		}
	}
	// A snapshot reports the balance of the user the award names.
	if f.Award != nil && f.Award.Snapshot != nil && f.UserID != "" {
		s := *f.Award.Snapshot
		if err := a.updateUser(f.Source, f.UserID, func(u *userRecord) {
			if u.Reported == nil || s.Newer(*u.Reported) {
				u.Reported = &s
			}
		}); err != nil {
			return err
		}
	}
	var prev *aggregate.ReceiptView
	if existed {
		prev = &old
	}
	if err := a.ledgerReceipt(e, prev, rec.View); err != nil {
		return err
	}
	return a.receiptStats(e, f, rec.View)
}

func (a applier) userEnrolled(f aggregate.UserEnrolled) error {
	if f.Source == "" || f.UserID == "" {
		return fmt.Errorf("enrolment names no source or user: %w", aggregate.ErrBadEvent)
	}
	return a.updateUser(f.Source, f.UserID, func(u *userRecord) {
		u.Enrolled = true
		if f.EnrolledAt != nil && (u.EnrolledAt == nil || f.EnrolledAt.Before(*u.EnrolledAt)) {
			t := *f.EnrolledAt
			u.EnrolledAt = &t
		}
	})
}

// pointsCredited adds a credit to the balance of the user it names in its
// BalanceSource's namespace (the crediting source when it names none),
// creating that balance view if it is new. Each credit event is applied
// once (the checkpoint sees to it); one credit per provider transaction is
// the webhook layer's dedupe.
func (a applier) pointsCredited(e eventstore.RecordedEvent, c aggregate.PointsCredited) error {
	ns := c.BalanceSource
	if ns == "" {
		ns = c.Source
	}
	if ns == "" || c.UserID == "" {
		return fmt.Errorf("%s at %s names no balance source or user: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	bad := !aggregate.AmountInBounds(c.Points)
	if err := a.updateUser(ns, c.UserID, func(u *userRecord) {
		u.Credited = u.Credited.Add(c.Points)
		if bad {
			u.CreditAnomalies++
		}
	}); err != nil {
		return err
	}
	if bad {
		agg, err := a.statsRecord(bucketStatsTotals, []byte(c.Source))
		if err != nil {
			return err
		}
		agg.CreditAnomalies++
	}
	return a.ledgerCredit(e, ns, c)
}

// entityEvent applies one event to its entity's view, timeline and index,
// and gives the users it names a balance view.
func (a applier) entityEvent(e eventstore.RecordedEvent, f aggregate.EntityEventRecorded) error {
	if !validKeyPart(f.Source) || !validKeyPart(f.Kind) || f.EntityID == "" {
		return fmt.Errorf("%s at %s names no valid source, kind or entity: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	entities := a.tx.Bucket(bucketEntities)
	ek := entityKey(f.Source, f.Kind, f.EntityID)
	var rec entityRecord
	switch err := getJSON(entities, ek, &rec); {
	case errors.Is(err, ErrNotFound):
		rec = entityRecord{
			View: Entity{
				Source: f.Source, Kind: f.Kind, ID: f.EntityID,
				FirstSeen: e.RecordedAt, FirstPosition: e.Position.Commit,
			},
			First: e.Position,
		}
		ik := append(entityIndexPrefix(f.Source, f.Kind), encodePosition(e.Position)...)
		if err := a.tx.Bucket(bucketEntityIndex).Put(ik, []byte(f.EntityID)); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("entity %s/%s: %w", f.Kind, f.EntityID, err)
	}

	v := &rec.View
	v.LastSeen = e.RecordedAt
	v.LastPosition = e.Position.Commit
	v.EventCount++
	if f.Status != "" && chooses(&rec.StatusRank, rank{At: f.StatusAt, BodySHA256: f.BodySHA256, Position: e.Position}) {
		v.Status, v.StatusAt = f.Status, f.StatusAt
	}
	at := f.OccurredAt
	if at == nil {
		at = f.StatusAt
	}
	if f.Amount != nil && chooses(&rec.AmountRank, rank{At: at, BodySHA256: f.BodySHA256, Position: e.Position}) {
		v.Amount, v.Currency = f.Amount, f.Currency
	}
	if f.UserID != "" && chooses(&rec.UserRank, rank{At: at, BodySHA256: f.BodySHA256, Position: e.Position}) {
		v.UserID = f.UserID
	}
	if err := putJSON(entities, ek, rec); err != nil {
		return err
	}

	// The timeline: this event at the end, the oldest out past MaxTimeline.
	// Events are applied in log order, so the entity's keys stay sorted.
	timeline := a.tx.Bucket(bucketEntityTimeline)
	prefix := encodePosition(rec.First)
	entry := EntityEvent{
		EventType: f.EventType, Status: f.Status, StatusAt: f.StatusAt, OccurredAt: f.OccurredAt,
		Amount: f.Amount, Currency: f.Currency, UserID: f.UserID, Attributes: f.Attributes,
		BodySHA256: f.BodySHA256, Position: e.Position.Commit, RecordedAt: e.RecordedAt,
	}
	if err := putJSON(timeline, append(bytes.Clone(prefix), encodePosition(e.Position)...), entry); err != nil {
		return err
	}
	if v.EventCount > MaxTimeline {
		c := timeline.Cursor()
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}

	// Every user an event names has a balance view: a user's own trigger
	// events are entities of kind user, and any entity may name its user.
	if f.Kind == aggregate.CategoryUser {
		if err := a.ensureUser(f.Source, f.EntityID); err != nil {
			return err
		}
	}
	if f.UserID != "" {
		return a.ensureUser(f.Source, f.UserID)
	}
	return nil
}

// ensureUser creates a user's (empty) balance view if it does not exist.
func (a applier) ensureUser(source, userID string) error {
	u, err := a.user(source, userID)
	if err != nil {
		return err
	}
	if !u.existed && !u.dirty {
		u.dirty = true
		a.touch(UserKey(source, userID))
	}
	return nil
}

// updateUser changes a user's balance state, creating it if need be.
func (a applier) updateUser(source, userID string, change func(*userRecord)) error {
	u, err := a.user(source, userID)
	if err != nil {
		return err
	}
	change(&u.rec)
	u.dirty = true
	a.touch(UserKey(source, userID))
	return nil
}

// userEntry is a user's balance state read into a batch.
type userEntry struct {
	key     []byte
	rec     userRecord
	existed bool // it was stored before the batch
	dirty   bool // the batch changed or created it: flushUsers writes it
}

// user returns the batch's copy of a user's balance state, reading it on
// first use (a new user's is empty). The copies are written back once per
// batch by flushUsers: an event touches its user's state several times,
// and a batch often holds several events of one user.
func (a applier) user(source, userID string) (*userEntry, error) {
	k := key(source, userID)
	if u, ok := a.users[string(k)]; ok {
		return u, nil
	}
	u := &userEntry{key: k, rec: userRecord{Totals: aggregate.Totals{Points: decimal.Zero, CO2e: decimal.Zero, HealthPoints: decimal.Zero}, Credited: decimal.Zero}}
	switch err := getJSON(a.tx.Bucket(bucketUsers), k, &u.rec); {
	case err == nil:
		u.existed = true
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("user %s: %w", userID, err)
	}
	a.users[string(k)] = u
	return u, nil
}

// flushUsers writes the users the batch changed, in key order.
func (a applier) flushUsers() error {
	keys := make([]string, 0, len(a.users))
	for k, u := range a.users {
		if u.dirty {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b := a.tx.Bucket(bucketUsers)
	for _, k := range keys {
		u := a.users[k]
		if err := putJSON(b, u.key, u.rec); err != nil {
			return err
		}
	}
	clear(a.users)
	return nil
}

// skip records an event that cannot be applied, so one bad event does not
// stop every read model; an audit lists them.
func (a applier) skip(e eventstore.RecordedEvent, cause error) error {
	k := binary.BigEndian.AppendUint64(nil, e.Position.Commit)
	return putJSON(a.tx.Bucket(bucketSkipped), k, map[string]string{
		"stream": e.Stream, "type": e.Type, "id": e.ID, "error": cause.Error(),
	})
}

func indexKey(source, userID string, firstPos uint64, receiptID string) []byte {
	k := make([]byte, 0, len(source)+len(userID)+len(receiptID)+10)
	k = append(append(k, source...), 0)
	k = append(append(k, userID...), 0)
	k = binary.BigEndian.AppendUint64(k, firstPos)
	return append(k, receiptID...)
}
