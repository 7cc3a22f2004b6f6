package projections

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
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
	Totals     aggregate.Totals    `json:"totals"`
	Reported   *aggregate.Snapshot `json:"reported,omitempty"`
	Enrolled   bool                `json:"enrolled"`
	EnrolledAt *time.Time          `json:"enrolled_at,omitempty"`
}

func (u userRecord) balance(source, userID string) Balance {
	b := Balance{
		Source:             source,
		UserID:             userID,
		Reported:           u.Reported,
		DerivedPoints:      u.Totals.Points,
		ReceiptsCompleted:  u.Totals.Completed,
		ReceiptsFailed:     u.Totals.Failed,
		ReceiptsInProgress: u.Totals.InProgress,
		TotalCO2e:          u.Totals.CO2e,
		TotalGreenProducts: u.Totals.GreenProducts,
		TotalHealthPoints:  u.Totals.HealthPoints,
		Enrolled:           u.Enrolled,
	}
	b.Reconciled = u.Reported == nil || u.Reported.LifetimePoints.Equal(b.DerivedPoints)
	return b
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
}

func (a applier) apply(e eventstore.RecordedEvent) error {
	switch e.Type {
	case aggregate.TypeReceiptStageRecorded:
		var f aggregate.StageRecorded
		if err := json.Unmarshal(e.Data, &f); err != nil {
			return fmt.Errorf("decode %s at %s: %v: %w", e.Type, e.Position, err, aggregate.ErrBadEvent)
		}
		return a.stageRecorded(e, f)
	case aggregate.TypeUserEnrolled:
		var f aggregate.UserEnrolled
		if err := json.Unmarshal(e.Data, &f); err != nil {
			return fmt.Errorf("decode %s at %s: %v: %w", e.Type, e.Position, err, aggregate.ErrBadEvent)
		}
		return a.userEnrolled(f)
	case aggregate.TypeDeliveryQuarantined:
		var q aggregate.Quarantined
		if err := json.Unmarshal(e.Data, &q); err != nil {
			return fmt.Errorf("decode %s at %s: %v: %w", e.Type, e.Position, err, aggregate.ErrBadEvent)
		}
		k := make([]byte, 0, len(q.Source)+9)
		k = append(append(k, q.Source...), 0)
		k = binary.BigEndian.AppendUint64(k, e.Position.Commit)
		return putJSON(a.tx.Bucket(bucketQuarantine), k, quarantineRecord{
			Position: e.Position.Commit, ProviderEventType: q.ProviderEventType, Reason: q.Reason, BodySHA256: q.BodySHA256,
		})
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
		return a.updateUser(f.Source, f.UserID, func(u *userRecord) {
			if u.Reported == nil || s.Newer(*u.Reported) {
				u.Reported = &s
			}
		})
	}
	return nil
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

func (a applier) updateUser(source, userID string, change func(*userRecord)) error {
	b := a.tx.Bucket(bucketUsers)
	k := key(source, userID)
	u := userRecord{Totals: aggregate.Totals{Points: decimal.Zero, CO2e: decimal.Zero, HealthPoints: decimal.Zero}}
	if err := getJSON(b, k, &u); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("user %s: %w", userID, err)
	}
	change(&u)
	return putJSON(b, k, u)
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
