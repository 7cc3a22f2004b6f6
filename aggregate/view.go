package aggregate

import (
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// ReceiptStatus is a receipt's overall state.
type ReceiptStatus string

const (
	StatusInProgress ReceiptStatus = "IN_PROGRESS"
	StatusCompleted  ReceiptStatus = "COMPLETED"
	StatusFailed     ReceiptStatus = "FAILED"
)

// Anomaly kinds a receipt view reports.
const (
	// AnomalyCorrection: one stage was reported with two different bodies.
	AnomalyCorrection = "correction"
	// AnomalyConflictingTerminals: both AWARDED and FAILED were reported.
	AnomalyConflictingTerminals = "conflicting_terminal_events"
	// AnomalyUserMismatch: the receipt's events name different users.
	AnomalyUserMismatch = "user_mismatch"
	// AnomalyAmountOutOfBounds: an amount the view shows (the award's
	// points, bonus points, health points, CO2e or green products, or the
	// receipt's money amount) is negative or larger than MaxAmount. It is
	// kept as sent — the log records what was sent, and a COMPLETED
	// receipt's points still count — but flagged (see AmountInBounds).
	AnomalyAmountOutOfBounds = "amount_out_of_bounds"
	// AnomalyOverdue: the receipt is still in progress after its source's
	// whole retry window, counted from its first recorded delivery (see
	// ReceiptView.Overdue). It depends on the time of the read, so it is
	// never part of Receipt.View: a reader adds it (MarkOverdue) with the
	// time its clock gives.
	AnomalyOverdue = "overdue"
)

// DefaultOverdueAfter is the retry window after which a receipt still in
// progress is overdue, unless its source's configuration says otherwise:
// Reewild's last retry comes 23 h 05 min after the first attempt (5 min,
// 1 h, 6 h and 16 h apart).
const DefaultOverdueAfter = 23*time.Hour + 5*time.Minute

// StageView is one stage of a receipt as the view shows it.
type StageView struct {
	Stage    Stage `json:"stage"`
	Reported bool  `json:"reported"`
	// OccurredAt is the provider's timestamp of the chosen fact, if any.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	// Corrections counts the further, different bodies reported for the stage.
	Corrections int `json:"corrections,omitempty"`
	// RecordedAt is when receiptd first recorded the stage: the earliest
	// RecordedAt among the facts that reported it (nil if none had one).
	RecordedAt *time.Time `json:"recorded_at,omitempty"`
}

// Anomaly is something about a receipt an operator or auditor should see.
type Anomaly struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// ReceiptView is the resolved state of one receipt: a function of the set of
// its facts, whatever their arrival order or duplication.
type ReceiptView struct {
	ReceiptID string        `json:"receipt_id"`
	Source    string        `json:"source"`
	UserID    string        `json:"user_id,omitempty"`
	Status    ReceiptStatus `json:"status"`

	// From the chosen AWARDED fact (zero otherwise).
	Points        decimal.Decimal `json:"points"`
	BonusPoints   decimal.Decimal `json:"bonus_points"`
	HealthPoints  decimal.Decimal `json:"health_points"`
	CO2e          decimal.Decimal `json:"co2e"`
	GreenProducts int64           `json:"green_products"`
	TransactionID string          `json:"transaction_id,omitempty"`

	Merchant string           `json:"merchant,omitempty"`
	Currency string           `json:"currency,omitempty"`
	Amount   *decimal.Decimal `json:"amount,omitempty"`

	// Stages lists every stage of Stages, in that order.
	Stages    []StageView `json:"stages"`
	Failure   *Failure    `json:"failure,omitempty"`
	Anomalies []Anomaly   `json:"anomalies,omitempty"`

	// UserIDs are all the user ids the receipt's facts name, sorted.
	UserIDs []string `json:"user_ids,omitempty"`
	// Snapshot is the newest user balance snapshot among its AWARDED facts.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// FirstRecorded returns when receiptd first recorded any stage of the
// receipt: the earliest of its stages' RecordedAt; false if none has one.
func (v *ReceiptView) FirstRecorded() (time.Time, bool) {
	var first time.Time
	ok := false
	for _, s := range v.Stages {
		if s.RecordedAt != nil && (!ok || s.RecordedAt.Before(first)) {
			first, ok = *s.RecordedAt, true
		}
	}
	return first, ok
}

// Overdue reports whether the receipt is still in progress more than
// window after its first recorded delivery, at time now: its provider's
// retries are over, so nothing more is coming unless someone replays it.
// A window of zero or less never makes a receipt overdue.
func (v *ReceiptView) Overdue(now time.Time, window time.Duration) bool {
	if v.Status != StatusInProgress || window <= 0 {
		return false
	}
	first, ok := v.FirstRecorded()
	return ok && now.Sub(first) > window
}

// MarkOverdue adds the overdue anomaly to v if it is Overdue at now, and
// reports whether it did. v must be a view of its own (its Anomalies are
// appended to).
func (v *ReceiptView) MarkOverdue(now time.Time, window time.Duration) bool {
	if !v.Overdue(now, window) {
		return false
	}
	first, _ := v.FirstRecorded()
	v.Anomalies = append(slices.Clip(v.Anomalies), Anomaly{
		Kind: AnomalyOverdue,
		Detail: fmt.Sprintf("still in progress %s after its first delivery was recorded (%s): past the source's retry window of %s",
			now.Sub(first).Round(time.Second), first.UTC().Format(time.RFC3339), window),
	})
	return true
}
