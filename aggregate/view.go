package aggregate

import (
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
)

// StageView is one stage of a receipt as the view shows it.
type StageView struct {
	Stage    Stage `json:"stage"`
	Reported bool  `json:"reported"`
	// OccurredAt is the provider's timestamp of the chosen fact, if any.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	// Corrections counts the further, different bodies reported for the stage.
	Corrections int `json:"corrections,omitempty"`
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
