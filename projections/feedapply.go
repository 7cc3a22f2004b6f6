package projections

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/feed"
)

// The feed's producer (issue 15): while the applier applies a log event,
// it collects the feed events the event causes (feedDraft) and writes
// them to bucketFeed in the same transaction (feedEnd), keyed by their
// feed positions, so the feed and the other read models are always at one
// checkpoint.
//
// A log event's feed events come in a fixed order of slots: a receipt's
// events (feed.ReceiptEvents: at most six) from slot 0, an entity's at 0;
// each user whose balance state the event changed, in key order, gets
// slots 8+2i (balance.changed.v1) and 9+2i (user.enrolled.v1, or the
// anomaly.detected.v1 of a credit out of bounds). Their feed positions are
// the log event's (feed.Pos) with their index among its events: dense, in
// slot order.
//
// Every event is a function of the log up to its log event: a receipt's
// and an entity's events depend only on its own events (all in its
// stream), a user's on every event about the user before it in log order.
// In log order (Apply) the applier has the user's record before and after
// at hand. A bulk build applies receipts out of log order (bulk.go): there
// each user change is recorded as a userOp (what the event did to the
// record: the additive fields as differences, the snapshot and the
// enrolment as candidates) and feedrun.go replays each user's ops in log
// order to give the same events, byte for byte.

// Slots of a log event's feed events.
const (
	slotUsers   = 8 // the first user's balance.changed.v1
	maxFeedUser = (feed.MaxPerLogEvent - slotUsers) / 2
)

// feedDraft is the feed being derived from one log event. An applier
// with none (applier.fd nil) derives no feed.
type feedDraft struct {
	receipt []feed.Event
	entity  feed.Event
	hasEnt  bool
	users   []feedUser // in the order first changed
	// out, in a bulk build, takes the events and users' ops instead of
	// the feed bucket (feedrun.go).
	out *feedOut
	// buf is the key's buffer, view the receipt view's (the events hold
	// it until feedEnd encodes them), arena the stored events' outside a
	// bulk build (a transaction holds them until it commits: only ever
	// appended to; a bulk build's are in out's chunks).
	buf, view, arena []byte
}

// feedUser is a user an event changed, with the record before the event.
type feedUser struct {
	source, id string
	entry      *userEntry
	before     userRecord
}

func (fd *feedDraft) reset() {
	clear(fd.receipt)
	fd.receipt, fd.hasEnt = fd.receipt[:0], false
	clear(fd.users)
	fd.users = fd.users[:0]
}

// feedUser notes that the event changes a user's record, keeping the
// record as it was before the event (the first time only). Called before
// every change of a user's record.
func (fd *feedDraft) feedUser(source, userID string, u *userEntry) {
	for i := range fd.users {
		if fd.users[i].entry == u {
			return
		}
	}
	// Decimals and pointers in a record are replaced, never changed in
	// place: a shallow copy keeps the record before.
	fd.users = append(fd.users, feedUser{source: source, id: userID, entry: u, before: u.rec})
}

// feedReceipt derives a receipt's feed events from its view before (nil:
// new) and after a fact.
func (fd *feedDraft) feedReceipt(f *aggregate.StageRecorded, prev, now *aggregate.ReceiptView, recordedAt time.Time) error {
	evs := feed.ReceiptEvents(prev, now, f.OccurredAt, recordedAt)
	if len(evs) == 0 {
		return nil
	}
	e := enc{b: fd.view[:0]}
	e.receiptView(now)
	fd.view = e.b
	view := e.b
	if e.bad {
		var err error
		if view, err = json.Marshal(now); err != nil {
			return fmt.Errorf("feed: receipt %s/%s: %w", now.Source, now.ReceiptID, err)
		}
	}
	for i := range evs {
		evs[i].View = view
	}
	fd.receipt = append(fd.receipt, evs...)
	return nil
}

// feedEntity derives an entity's entity.changed.v1 from its view after an
// event.
func (fd *feedDraft) feedEntity(e eventstore.RecordedEvent, f *aggregate.EntityEventRecorded, v *Entity) error {
	view := *v
	view.Timeline = nil
	b, err := json.Marshal(&view)
	if err != nil {
		return fmt.Errorf("feed: entity %s/%s/%s: %w", v.Source, v.Kind, v.ID, err)
	}
	at := f.OccurredAt
	if at == nil {
		at = f.StatusAt
	}
	fd.entity, fd.hasEnt = feed.EntityChanged(v.Source, v.Kind, v.ID, v.UserID, e.Position.Commit, b, at, e.RecordedAt), true
	return nil
}

// feedEnd writes the feed events of the event just applied: to the feed
// bucket, or in a bulk build to its feedOut.
func (a *applier) feedEnd(e eventstore.RecordedEvent, d *decodedEvent) error {
	fd := a.fd
	if len(fd.receipt) == 0 && !fd.hasEnt && len(fd.users) == 0 {
		return nil
	}
	commit := e.Position.Commit
	if commit > feed.MaxLogPosition {
		return fmt.Errorf("feed: log position %d is past the feed's range", commit)
	}
	if n := len(fd.receipt); n > slotUsers || (fd.hasEnt && n > 0) {
		return fmt.Errorf("feed: the log event at %d causes %d receipt events, more than the %d slots", commit, n, slotUsers)
	}
	if len(fd.users) > maxFeedUser {
		return fmt.Errorf("feed: the log event at %d changes %d users, more than %d", commit, len(fd.users), maxFeedUser)
	}
	put := a.feedPut(commit)
	for i := range fd.receipt {
		if err := put(i, &fd.receipt[i]); err != nil {
			return err
		}
	}
	if fd.hasEnt {
		if err := put(0, &fd.entity); err != nil {
			return err
		}
	}
	if len(fd.users) > 1 {
		slices.SortFunc(fd.users, func(x, y feedUser) int {
			return cmpUserKey(x.source, x.id, y.source, y.id)
		})
	}
	for i := range fd.users {
		u := &fd.users[i]
		op := userOp{slot: slotUsers + 2*i, recordedAt: e.RecordedAt}
		if fd.out != nil {
			op.delta = recordDelta(&u.before, &u.entry.rec)
		}
		userOpFacts(&op, u.source, u.id, d)
		if fd.out != nil {
			if err := fd.out.userOp(commit, u.source, u.id, &op); err != nil {
				return err
			}
			continue
		}
		if err := putUserEvents(put, &op, u.source, u.id, commit, &u.before, &u.entry.rec); err != nil {
			return err
		}
	}
	return nil
}

// feedPut returns the function that stores a feed event of the log event
// at commit at a slot: in the feed bucket at the next index of the log
// event's events (positions are dense), or in a bulk build's feedOut at
// its slot (writeFeed numbers them as densely).
func (a *applier) feedPut(commit uint64) func(int, *feed.Event) error {
	fd := a.fd
	index := 0
	return func(slot int, ev *feed.Event) error {
		if fd.out != nil {
			ev.Position = feed.Pos(commit, slot)
		} else {
			ev.Position = feed.Pos(commit, index)
			index++
		}
		n := feed.MarshalSize(ev)
		if fd.out != nil {
			c := fd.out.room(n)
			start := len(c)
			return fd.out.event(ev.Position, fd.out.took(feed.AppendMarshal(c, ev), start))
		}
		if cap(fd.arena)-len(fd.arena) < n {
			fd.arena = make([]byte, 0, max(n, 64<<10))
		}
		start := len(fd.arena)
		fd.arena = feed.AppendMarshal(fd.arena, ev)
		v := fd.arena[start:len(fd.arena):len(fd.arena)]
		b := a.tx.Bucket(bucketFeed)
		b.FillPercent = 1 // in log order, keys are only ever appended
		fd.buf = binary.BigEndian.AppendUint64(fd.buf[:0], ev.Position)
		return b.Put(fd.buf, v)
	}
}

// putUserEvents stores op's events at its slots.
func putUserEvents(put func(int, *feed.Event) error, op *userOp, source, userID string, commit uint64, before, after *userRecord) error {
	atSlot, atNext, err := op.events(source, userID, commit, before, after)
	if err != nil {
		return err
	}
	if atSlot != nil {
		if err := put(op.slot, atSlot); err != nil {
			return err
		}
	}
	if atNext != nil {
		return put(op.slot+1, atNext)
	}
	return nil
}

func cmpUserKey(s1, u1, s2, u2 string) int {
	if c := strings.Compare(s1, s2); c != 0 {
		return c
	}
	return strings.Compare(u1, u2)
}

// userOp is what one event did to one user's record, as far as the feed
// needs it: the additive fields' differences (delta: Totals, Credited,
// CreditAnomalies; only in a bulk build), the snapshot and enrolment it
// offered (delta.Reported, delta.Enrolled and EnrolledAt), whether it
// credited the user an amount out of bounds (credit, its anomaly), its
// slot, and its times.
type userOp struct {
	slot       int
	delta      userRecord
	credit     *aggregate.Anomaly
	occurredAt *time.Time
	recordedAt time.Time
}

// recordDelta is after's additive fields minus before's.
func recordDelta(before, after *userRecord) userRecord {
	var delta userRecord
	t, bt := &delta.Totals, &before.Totals
	*t = after.Totals
	t.Completed -= bt.Completed
	t.Failed -= bt.Failed
	t.InProgress -= bt.InProgress
	t.Points = t.Points.Sub(bt.Points)
	t.CO2e = t.CO2e.Sub(bt.CO2e)
	t.GreenProducts -= bt.GreenProducts
	t.HealthPoints = t.HealthPoints.Sub(bt.HealthPoints)
	t.AmountAnomalies -= bt.AmountAnomalies
	delta.Credited = after.Credited.Sub(before.Credited)
	delta.CreditAnomalies = after.CreditAnomalies - before.CreditAnomalies
	return delta
}

// userOpFacts sets what op takes from the event itself: its provider
// time, the snapshot or enrolment it offers the user, its credit's
// anomaly.
func userOpFacts(op *userOp, source, userID string, d *decodedEvent) {
	switch {
	case d.stage != nil:
		f := d.stage
		op.occurredAt = f.OccurredAt
		if f.Award != nil && f.Award.Snapshot != nil && f.Source == source && f.UserID == userID {
			s := *f.Award.Snapshot
			op.delta.Reported = &s
		}
	case d.enrol != nil:
		f := d.enrol
		op.occurredAt = f.EnrolledAt
		if f.Source == source && f.UserID == userID {
			op.delta.Enrolled = true
			op.delta.EnrolledAt = f.EnrolledAt
		}
	case d.credit != nil:
		c := d.credit
		op.occurredAt = c.OccurredAt
		ns := c.BalanceSource
		if ns == "" {
			ns = c.Source
		}
		if ns == source && c.UserID == userID && !aggregate.AmountInBounds(c.Points) {
			op.credit = &aggregate.Anomaly{Kind: aggregate.AnomalyAmountOutOfBounds,
				Detail: fmt.Sprintf("a credit of %s points from %s, outside the sanity bounds [0, %d]; kept as sent", c.Points, c.Source, aggregate.MaxAmount)}
		}
	case d.entity != nil:
		op.occurredAt = d.entity.OccurredAt
	}
}

// apply applies op to a user's record in log order (a bulk build's
// replay): the additive fields add, the snapshot is kept if newer, the
// enrolment is set with its earliest time, as the applier's own changes
// do.
func (op *userOp) apply(u *userRecord) {
	t, dt := &u.Totals, &op.delta.Totals
	t.Completed += dt.Completed
	t.Failed += dt.Failed
	t.InProgress += dt.InProgress
	t.Points = t.Points.Add(dt.Points)
	t.CO2e = t.CO2e.Add(dt.CO2e)
	t.GreenProducts += dt.GreenProducts
	t.HealthPoints = t.HealthPoints.Add(dt.HealthPoints)
	t.AmountAnomalies += dt.AmountAnomalies
	u.Credited = u.Credited.Add(op.delta.Credited)
	u.CreditAnomalies += op.delta.CreditAnomalies
	if s := op.delta.Reported; s != nil && (u.Reported == nil || s.Newer(*u.Reported)) {
		c := *s
		u.Reported = &c
	}
	if op.delta.Enrolled {
		u.Enrolled = true
		if at := op.delta.EnrolledAt; at != nil && (u.EnrolledAt == nil || at.Before(*u.EnrolledAt)) {
			c := *at
			u.EnrolledAt = &c
		}
	}
}

// events are the feed events of op on a user whose record went from
// before to after: at its slot balance.changed.v1, if the balance view
// changed (its enrolled flag aside); at the next, user.enrolled.v1 if the
// user is enrolled for the first time, or the credit's
// anomaly.detected.v1. Either may be nil.
func (op *userOp) events(source, userID string, commit uint64, before, after *userRecord) (atSlot, atNext *feed.Event, err error) {
	changed := balanceDiffers(before, after)
	enrolled := after.Enrolled && !before.Enrolled
	if !changed && !enrolled && op.credit == nil {
		return nil, nil, nil
	}
	bal := after.balance(source, userID)
	e := enc{b: make([]byte, 0, 512)}
	e.balance(&bal)
	view := e.b
	if changed {
		ev := feed.BalanceChanged(source, userID, commit, view, op.occurredAt, op.recordedAt)
		atSlot = &ev
	}
	switch {
	case enrolled:
		ev := feed.UserEnrolled(source, userID, view, op.occurredAt, op.recordedAt)
		atNext = &ev
	case op.credit != nil:
		ev := feed.CreditAnomaly(source, userID, commit, *op.credit, view, op.occurredAt, op.recordedAt)
		atNext = &ev
	}
	return atSlot, atNext, nil
}

// balanceDiffers reports whether two records give different balance
// views, the enrolled flag aside (user.enrolled.v1 reports it).
func balanceDiffers(x, y *userRecord) bool {
	a, b := &x.Totals, &y.Totals
	if a.Completed != b.Completed || a.Failed != b.Failed || a.InProgress != b.InProgress || a.GreenProducts != b.GreenProducts ||
		a.AmountAnomalies != b.AmountAnomalies || x.CreditAnomalies != y.CreditAnomalies ||
		!a.Points.Equal(b.Points) || !a.CO2e.Equal(b.CO2e) || !a.HealthPoints.Equal(b.HealthPoints) || !x.Credited.Equal(y.Credited) {
		return true
	}
	switch {
	case (x.Reported == nil) != (y.Reported == nil):
		return true
	case x.Reported == nil:
		return false
	}
	r, s := x.Reported, y.Reported
	return !r.AvailablePoints.Equal(s.AvailablePoints) || !r.LifetimePoints.Equal(s.LifetimePoints) || r.NumTransactions != s.NumTransactions
}

// balance appends a balance view as encoding/json writes it (checked by
// TestBalanceEncoderMatchesEncodingJSON).
func (e *enc) balance(b *Balance) {
	e.b = append(e.b, '{')
	e.key(true, "source")
	e.str(b.Source)
	e.key(false, "user_id")
	e.str(b.UserID)
	if b.Reported != nil {
		e.key(false, "reported")
		e.b = append(e.b, '{')
		e.snapshot(b.Reported)
	}
	e.key(false, "awarded_points")
	e.dec(b.AwardedPoints)
	e.key(false, "credited_points")
	e.dec(b.CreditedPoints)
	e.key(false, "derived_points")
	e.dec(b.DerivedPoints)
	e.key(false, "reconciled")
	e.bool(b.Reconciled)
	e.key(false, "receipts_completed")
	e.int(b.ReceiptsCompleted)
	e.key(false, "receipts_failed")
	e.int(b.ReceiptsFailed)
	e.key(false, "receipts_in_progress")
	e.int(b.ReceiptsInProgress)
	e.key(false, "total_co2e")
	e.dec(b.TotalCO2e)
	e.key(false, "total_green_products")
	e.int(b.TotalGreenProducts)
	e.key(false, "total_health_points")
	e.dec(b.TotalHealthPoints)
	e.key(false, "enrolled")
	e.bool(b.Enrolled)
	e.key(false, "amount_anomalies")
	e.int(b.AmountAnomalies)
	e.b = append(e.b, '}')
}
