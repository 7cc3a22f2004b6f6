package feed

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

// ReceiptEvents returns the feed events one fact caused on its receipt,
// in this order: receipt.progressed.v1 for a stage reported for the first
// time, receipt.completed.v1 or receipt.failed.v1 when the status became
// terminal, anomaly.detected.v1 for each anomaly that appeared. prev is
// the receipt's view before the fact (nil if it had none), next after it.
// occurredAt is the fact's provider time, recordedAt the log's. Positions
// are left to the caller, and View: every event carries next's JSON (as
// encoding/json writes an aggregate.ReceiptView), which the caller encodes
// once (ReceiptViewJSON, or its own encoder of the same bytes).
//
// It is a pure function of the two views, and the views are functions of
// the receipt's set of facts: so however its deliveries arrive (any order,
// duplicates, corrections), a receipt's completion is reported exactly
// once — the status only ever becomes COMPLETED once, and stays it — and
// each stage's first report once.
func ReceiptEvents(prev, next *aggregate.ReceiptView, occurredAt *time.Time, recordedAt time.Time) []Event {
	if next == nil {
		return nil
	}
	var before aggregate.ReceiptView
	if prev != nil {
		before = *prev
	} else {
		before.Status = aggregate.StatusInProgress
	}
	var out []Event
	var users []string // shared by the events, read-only
	if next.UserID != "" {
		users = []string{next.UserID}
	}
	occurred := cloneTime(occurredAt) // shared too
	event := func(kind, part string) *Event {
		id := EventID(kind, next.Source, next.ReceiptID)
		if part != "" {
			id = EventID(kind, next.Source, next.ReceiptID, part)
		}
		out = append(out, Event{
			ID: id, Kind: kind, Source: next.Source, UserIDs: users, ReceiptID: next.ReceiptID, UserID: next.UserID,
			OccurredAt: occurred, RecordedAt: recordedAt, ViewOf: ViewReceipt,
		})
		return &out[len(out)-1]
	}
	for _, s := range next.Stages {
		if s.Reported && !reported(&before, s.Stage) {
			event(KindReceiptProgressed, string(s.Stage)).Stage = s.Stage
		}
	}
	if next.Status != before.Status {
		switch next.Status {
		case aggregate.StatusCompleted:
			event(KindReceiptCompleted, "")
		case aggregate.StatusFailed:
			event(KindReceiptFailed, "")
		}
	}
	had := anomalyKeys(&before)
	keys := anomalyKeys(next)
	for i, a := range next.Anomalies {
		if !slices.Contains(had, keys[i]) {
			event(KindAnomalyDetected, keys[i]).Anomalies = []aggregate.Anomaly{a}
		}
	}
	return out
}

// ReceiptViewJSON is a receipt view's JSON, as events carry it.
func ReceiptViewJSON(v *aggregate.ReceiptView) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("feed: receipt %s/%s: %w", v.Source, v.ReceiptID, err)
	}
	return b, nil
}

func reported(v *aggregate.ReceiptView, s aggregate.Stage) bool {
	for _, sv := range v.Stages {
		if sv.Stage == s {
			return sv.Reported
		}
	}
	return false
}

// anomalyKeys names each of a view's anomalies by what it is about, not
// by its detail (which counts and lists, and so changes as facts come):
// "correction:STAGE" for a stage's correction, the kind otherwise. The
// view lists corrections in stage order first (aggregate.ReceiptView), one
// per corrected stage. The keys are in the order of v.Anomalies.
func anomalyKeys(v *aggregate.ReceiptView) []string {
	keys := make([]string, len(v.Anomalies))
	var corrected []aggregate.Stage
	for _, s := range v.Stages {
		if s.Corrections > 0 {
			corrected = append(corrected, s.Stage)
		}
	}
	for i, a := range v.Anomalies {
		k := a.Kind
		if a.Kind == aggregate.AnomalyCorrection && len(corrected) > 0 {
			k += ":" + string(corrected[0])
			corrected = corrected[1:]
		}
		keys[i] = k
	}
	return keys
}

// BalanceChanged is the balance.changed.v1 event of a user's balance view
// (source is the user id namespace), changed by the log event at commit
// position logCommit. view is the new balance view's JSON.
func BalanceChanged(source, userID string, logCommit uint64, view []byte, occurredAt *time.Time, recordedAt time.Time) Event {
	return Event{
		ID: EventID(KindBalanceChanged, source, userID, strconv.FormatUint(logCommit, 10)), Kind: KindBalanceChanged,
		Source: source, UserIDs: []string{userID}, UserID: userID,
		OccurredAt: cloneTime(occurredAt), RecordedAt: recordedAt, ViewOf: ViewBalance, View: view,
	}
}

// UserEnrolled is the user.enrolled.v1 event of a user whose enrolment was
// reported for the first time; view is their balance view's JSON.
func UserEnrolled(source, userID string, view []byte, occurredAt *time.Time, recordedAt time.Time) Event {
	return Event{
		ID: EventID(KindUserEnrolled, source, userID), Kind: KindUserEnrolled,
		Source: source, UserIDs: []string{userID}, UserID: userID,
		OccurredAt: cloneTime(occurredAt), RecordedAt: recordedAt, ViewOf: ViewBalance, View: view,
	}
}

// CreditAnomaly is the anomaly.detected.v1 event of a credit to a user
// whose amount is out of bounds, at commit position logCommit; view is the
// user's balance view's JSON after it.
func CreditAnomaly(source, userID string, logCommit uint64, a aggregate.Anomaly, view []byte, occurredAt *time.Time, recordedAt time.Time) Event {
	return Event{
		ID: EventID(KindAnomalyDetected, source, userID, "credit", strconv.FormatUint(logCommit, 10)), Kind: KindAnomalyDetected,
		Source: source, UserIDs: []string{userID}, UserID: userID, Anomalies: []aggregate.Anomaly{a},
		OccurredAt: cloneTime(occurredAt), RecordedAt: recordedAt, ViewOf: ViewBalance, View: view,
	}
}

// EntityChanged is the entity.changed.v1 event of an entity's view after
// the log event at commit position logCommit; userID is the entity's user
// (if any), view the entity's view's JSON without its timeline. A user's
// own entity (kind user) is about that user too.
func EntityChanged(source, kind, entityID, userID string, logCommit uint64, view []byte, occurredAt *time.Time, recordedAt time.Time) Event {
	e := Event{
		ID: EventID(KindEntityChanged, source, kind, entityID, strconv.FormatUint(logCommit, 10)), Kind: KindEntityChanged,
		Source: source, EntityKind: kind, EntityID: entityID, UserID: userID,
		OccurredAt: cloneTime(occurredAt), RecordedAt: recordedAt, ViewOf: ViewEntity, View: view,
	}
	if userID != "" {
		e.UserIDs = append(e.UserIDs, userID)
	}
	if kind == aggregate.CategoryUser && entityID != userID {
		e.UserIDs = append(e.UserIDs, entityID)
	}
	return e
}

// Number gives a log event's feed events their positions, in order.
func Number(logCommit uint64, events []Event) error {
	if len(events) > MaxPerLogEvent {
		return fmt.Errorf("feed: the log event at %d caused %d feed events, more than %d", logCommit, len(events), MaxPerLogEvent)
	}
	if logCommit > MaxLogPosition {
		return fmt.Errorf("feed: log position %d is past the feed's range", logCommit)
	}
	for i := range events {
		events[i].Position = Pos(logCommit, i)
	}
	return nil
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
