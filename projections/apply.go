package projections

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
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

// applier applies events inside one write transaction, to the records
// of its cache (see cache) and, for the entries only ever added (indexes,
// ledger, timelines, quarantine), to the transaction directly.
type applier struct {
	// tx is nil in a bulk build's workers (bulk.go), whose records are all
	// new.
	tx *bolt.Tx
	c  *cache
	// bulk, in a bulk build, collects the ledger entries (and, from its
	// workers, the index entries) instead of tx.
	bulk *bulkOut
	// touched collects the keys of the receipt and balance views the
	// events changed (or may have), for watchers.
	touched map[Key]struct{}
	// fd, if not nil, collects the feed events the event being applied
	// causes (feedapply.go).
	fd *feedDraft
}

func (a *applier) touch(k Key) {
	if a.touched != nil {
		a.touched[k] = struct{}{}
	}
}

// decodedEvent is an event's data and metadata, decoded (decodeEvents
// does it on every core, before the transaction).
type decodedEvent struct {
	stage   *aggregate.StageRecorded
	enrol   *aggregate.UserEnrolled
	quar    *aggregate.Quarantined
	credit  *aggregate.PointsCredited
	entity  *aggregate.EntityEventRecorded
	meta    aggregate.Metadata
	metaErr error
	err     error
}

// decodeEvent decodes what applying e needs: its data, and its metadata
// for the types whose read models show how they arrived.
func decodeEvent(e eventstore.RecordedEvent, d *decodedEvent) {
	bad := func(err error) {
		d.err = fmt.Errorf("decode %s at %s: %w", e.Type, e.Position, err)
	}
	switch eventcodec.Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		f, err := eventcodec.StageRecorded(e.Event)
		if err != nil {
			bad(err)
			return
		}
		f.Raw = nil // never needed here: the log keeps it
		d.stage = &f
	case aggregate.TypeUserEnrolled:
		f, err := eventcodec.UserEnrolled(e.Event)
		if err != nil {
			bad(err)
			return
		}
		f.Raw = nil
		d.enrol = &f
		return
	case aggregate.TypeDeliveryQuarantined:
		q, err := eventcodec.Quarantined(e.Event)
		if err != nil {
			bad(err)
			return
		}
		q.Raw = nil
		d.quar = &q
		return
	case aggregate.TypeUserPointsCredited:
		c, err := eventcodec.PointsCredited(e.Event)
		if err != nil {
			bad(err)
			return
		}
		c.Raw = nil
		d.credit = &c
	case aggregate.TypeEntityEventRecorded:
		f, err := eventcodec.EntityEventRecorded(e.Event)
		if err != nil {
			bad(err)
			return
		}
		f.Raw = nil
		d.entity = &f
		return
	default:
		return
	}
	d.meta, d.metaErr = eventcodec.Metadata(e.Event)
}

// parallelDecodeMin is the batch size from which decodeEvents uses every
// core.
const parallelDecodeMin = 128

// decodeEvents decodes a batch, on every core when it is large.
func decodeEvents(events []eventstore.RecordedEvent, out []decodedEvent) {
	workers := min(runtime.GOMAXPROCS(0), len(events)/(parallelDecodeMin/2))
	if workers <= 1 {
		for i := range events {
			decodeEvent(events[i], &out[i])
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (len(events) + workers - 1) / workers
	for lo := 0; lo < len(events); lo += chunk {
		hi := min(lo+chunk, len(events))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				decodeEvent(events[i], &out[i])
			}
		})
	}
	wg.Wait()
}

// apply applies one event, and stores the feed events it causes.
func (a *applier) apply(e eventstore.RecordedEvent, d *decodedEvent) error {
	if a.fd == nil {
		return a.applyEvent(e, d)
	}
	a.fd.reset()
	if err := a.applyEvent(e, d); err != nil {
		return err
	}
	return a.feedEnd(e, d)
}

func (a *applier) applyEvent(e eventstore.RecordedEvent, d *decodedEvent) error {
	if d.err != nil {
		return d.err
	}
	switch {
	case d.stage != nil:
		return a.stageRecorded(e, d, *d.stage)
	case d.enrol != nil:
		return a.userEnrolled(*d.enrol)
	case d.quar != nil:
		q := d.quar
		k := make([]byte, 0, len(q.Source)+9)
		k = append(append(k, q.Source...), 0)
		k = binary.BigEndian.AppendUint64(k, e.Position.Commit)
		return putJSON(a.tx.Bucket(bucketQuarantine), k, quarantineRecord{
			Position: e.Position.Commit, ProviderEventType: q.ProviderEventType, Reason: q.Reason, BodySHA256: q.BodySHA256,
		})
	case d.credit != nil:
		return a.pointsCredited(e, d, *d.credit)
	case d.entity != nil:
		return a.entityEvent(e, *d.entity)
	default:
		// Event types of later versions or of other read models: nothing to do.
		return nil
	}
}

func (a *applier) stageRecorded(e eventstore.RecordedEvent, d *decodedEvent, f aggregate.StageRecorded) error {
	if f.Source == "" || f.ReceiptID == "" {
		return fmt.Errorf("%s at %s names no source or receipt: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	// Every time the read models show must have a JSON form (see canon.go).
	at := receivedAt(e, d)
	if (f.OccurredAt != nil && !timeInJSONRange(*f.OccurredAt)) || !timeInJSONRange(at) || !ledgerTimesInRange(e, d) {
		return fmt.Errorf("%s at %s: a time outside years 0-9999: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	re, err := a.receipt(f.Source, f.ReceiptID)
	if err != nil {
		return err
	}
	si := stageIndex(f.Stage)
	hadStage := si >= 0 && len(re.agg.StageFacts(si)) > 0
	f.RecordedAt = &at
	added, err := re.agg.Add(f) // an unknown stage is its error
	if err != nil {
		return err
	}
	if !added && !at.Before(re.received[si]) {
		// The same fact twice in the log, recorded no earlier: the view is
		// unchanged. (Recorded earlier, it moves the stage's recorded_at.)
		return nil
	}
	existed := re.existed
	if !existed {
		re.first = e.Position.Commit
	}
	if !hadStage || at.Before(re.received[si]) {
		re.received[si] = at
	}
	old := re.view
	re.view = re.agg.View()
	re.last = e.Position.Commit
	re.existed = true
	a.c.changedReceipt(re)
	a.touch(ReceiptKey(f.Source, f.ReceiptID))
	now := &re.view

	// Every user a fact names has a balance view.
	if f.UserID != "" {
		if err := a.ensureUser(f.Source, f.UserID); err != nil {
			return err
		}
	}
	// Move the receipt's contribution from its old owner to its new one
	// (nothing to move when it is the same: the sums would come back to
	// the same values).
	same := existed && sameTotals(&old, now)
	if existed && old.UserID != "" && !same {
		if err := a.updateUser(f.Source, old.UserID, func(u *userRecord) { u.Totals.Add(old, -1) }); err != nil {
			return err
		}
		if old.UserID != now.UserID && a.bulk == nil {
			if err := a.tx.Bucket(bucketUserReceipts).Delete(indexKey(f.Source, old.UserID, re.first, f.ReceiptID)); err != nil {
				return err
			}
		}
	}
	if now.UserID != "" && !same {
		if err := a.updateUser(f.Source, now.UserID, func(u *userRecord) { u.Totals.Add(*now, +1) }); err != nil {
			return err
		}
		// A bulk build indexes each receipt's final user once.
		if (!existed || old.UserID != now.UserID) && a.bulk == nil {
			if err := a.tx.Bucket(bucketUserReceipts).Put(indexKey(f.Source, now.UserID, re.first, f.ReceiptID), nil); err != nil {
				return err
			}
		}
	}
	// A snapshot reports the balance of the user the award names.
	if f.Award != nil && f.Award.Snapshot != nil && f.UserID != "" {
		s := f.Award.Snapshot
		if err := a.updateUser(f.Source, f.UserID, func(u *userRecord) {
			if u.Reported == nil || s.Newer(*u.Reported) {
				c := *s
				u.Reported = &c
			}
		}); err != nil {
			return err
		}
	}
	var prev *aggregate.ReceiptView
	if existed {
		prev = &old
	}
	if a.fd != nil {
		if err := a.fd.feedReceipt(&f, prev, now, e.RecordedAt); err != nil {
			return err
		}
	}
	if err := a.indexInProgress(f.Source, f.ReceiptID, prev, now); err != nil {
		return err
	}
	if err := a.ledgerReceipt(e, d, prev, now); err != nil {
		return err
	}
	return a.receiptStats(f.Source, re)
}

// stageIndex returns the index of s in aggregate.Stages, or -1.
func stageIndex(s aggregate.Stage) int {
	switch s {
	case aggregate.StageUploaded:
		return 0
	case aggregate.StageExtracted:
		return 1
	case aggregate.StageEnriched:
		return 2
	case aggregate.StageValidated:
		return 3
	case aggregate.StageScored:
		return 4
	case aggregate.StageAwarded:
		return 5
	case aggregate.StageFailed:
		return 6
	}
	return -1
}

// newUserRecord is the balance state of a user nothing was applied to.
func newUserRecord() userRecord {
	return userRecord{Totals: aggregate.Totals{Points: decimal.Zero, CO2e: decimal.Zero, HealthPoints: decimal.Zero}, Credited: decimal.Zero}
}

func (a *applier) userEnrolled(f aggregate.UserEnrolled) error {
	if f.Source == "" || f.UserID == "" {
		return fmt.Errorf("enrolment names no source or user: %w", aggregate.ErrBadEvent)
	}
	if f.EnrolledAt != nil && !timeInJSONRange(*f.EnrolledAt) {
		return fmt.Errorf("enrolment of %s/%s at a time outside years 0-9999: %w", f.Source, f.UserID, aggregate.ErrBadEvent)
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
func (a *applier) pointsCredited(e eventstore.RecordedEvent, d *decodedEvent, c aggregate.PointsCredited) error {
	ns := c.BalanceSource
	if ns == "" {
		ns = c.Source
	}
	if ns == "" || c.UserID == "" {
		return fmt.Errorf("%s at %s names no balance source or user: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	if !ledgerTimesInRange(e, d) {
		return fmt.Errorf("%s at %s: a time outside years 0-9999: %w", e.Type, e.Position, aggregate.ErrBadEvent)
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
	return a.ledgerCredit(e, d, ns, c)
}

// entityEvent applies one event to its entity's view, timeline and index,
// and gives the users it names a balance view.
func (a *applier) entityEvent(e eventstore.RecordedEvent, f aggregate.EntityEventRecorded) error {
	if !validKeyPart(f.Source) || !validKeyPart(f.Kind) || f.EntityID == "" {
		return fmt.Errorf("%s at %s names no valid source, kind or entity: %w", e.Type, e.Position, aggregate.ErrBadEvent)
	}
	ent, err := a.entity(f.Source, f.Kind, f.EntityID)
	if err != nil {
		return err
	}
	rec := &ent.rec
	if !ent.existed {
		*rec = entityRecord{
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
		ent.existed = true
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
	a.c.changedEntity(ent)
	if a.fd != nil {
		if err := a.fd.feedEntity(e, &f, v); err != nil {
			return err
		}
	}

	// The timeline: this event at the end, the oldest out past MaxTimeline.
	// Events are applied in log order, so the entity's keys stay sorted.
	timeline := a.tx.Bucket(bucketEntityTimeline)
	prefix := encodePosition(rec.First)
	entry := EntityEvent{
		EventType: f.EventType, Status: f.Status, StatusAt: f.StatusAt, OccurredAt: f.OccurredAt,
		Amount: f.Amount, Currency: f.Currency, UserID: f.UserID, Attributes: f.Attributes, Sealed: f.Sealed,
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
func (a *applier) ensureUser(source, userID string) error {
	u, err := a.user(source, userID)
	if err != nil {
		return err
	}
	if !u.existed && !u.dirty {
		a.c.changedUser(u)
		a.touch(UserKey(source, userID))
	}
	return nil
}

// updateUser changes a user's balance state, creating it if need be.
func (a *applier) updateUser(source, userID string, change func(*userRecord)) error {
	u, err := a.user(source, userID)
	if err != nil {
		return err
	}
	if a.fd != nil {
		a.fd.feedUser(source, userID, u)
	}
	change(&u.rec)
	a.c.changedUser(u)
	a.touch(UserKey(source, userID))
	return nil
}

// skip records an event that cannot be applied, so one bad event does not
// stop every read model; an audit lists them.
func (a *applier) skip(e eventstore.RecordedEvent, cause error) error {
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

// ledgerTimesInRange reports whether the times a ledger entry of e would
// show have a JSON form.
func ledgerTimesInRange(e eventstore.RecordedEvent, d *decodedEvent) bool {
	return timeInJSONRange(e.RecordedAt) && (d.metaErr != nil || timeInJSONRange(d.meta.ReceivedAt))
}

// sameTotals reports whether two views of a receipt add the same to
// their user's totals (aggregate.Totals.Add): same user, same status,
// and for a completed receipt the same amounts.
func sameTotals(a, b *aggregate.ReceiptView) bool {
	if a.UserID != b.UserID || a.Status != b.Status || a.HasAmountAnomaly() != b.HasAmountAnomaly() {
		return false
	}
	return a.Status != aggregate.StatusCompleted || (a.Points.Equal(b.Points) && a.CO2e.Equal(b.CO2e) &&
		a.HealthPoints.Equal(b.HealthPoints) && a.GreenProducts == b.GreenProducts)
}
