package aggregate

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
)

// Stage is a receipt pipeline stage, by name. Providers' numbers are never
// used for ordering (Reewild numbers VALIDATE after SCORE).
type Stage string

// The stages, in pipeline order. AWARDED is terminal success, FAILED
// terminal failure.
const (
	StageUploaded  Stage = "UPLOADED"
	StageExtracted Stage = "EXTRACTED"
	StageEnriched  Stage = "ENRICHED"
	StageValidated Stage = "VALIDATED"
	StageScored    Stage = "SCORED"
	StageAwarded   Stage = "AWARDED"
	StageFailed    Stage = "FAILED"
)

// Stages lists every stage in pipeline order.
var Stages = []Stage{StageUploaded, StageExtracted, StageEnriched, StageValidated, StageScored, StageAwarded, StageFailed}

// Valid reports whether s is one of Stages.
func (s Stage) Valid() bool {
	for _, t := range Stages {
		if s == t {
			return true
		}
	}
	return false
}

// StageRecorded is the data of TypeReceiptStageRecorded: one provider
// delivery about one receipt, normalized.
type StageRecorded struct {
	Source    string `json:"source"`
	ReceiptID string `json:"receipt_id"`
	// UserID as the delivery names it (may be empty).
	UserID string `json:"user_id,omitempty"`
	Stage  Stage  `json:"stage"`
	// OccurredAt is the provider's own timestamp for the stage, where the
	// payload carries one.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	BodySHA256 string     `json:"body_sha256"`

	// Details the stage carries, where it does.
	Merchant string           `json:"merchant,omitempty"`
	Currency string           `json:"currency,omitempty"`
	Amount   *decimal.Decimal `json:"amount,omitempty"`

	Award   *Award   `json:"award,omitempty"`
	Failure *Failure `json:"failure,omitempty"`

	// Raw is the provider's body (compacted JSON), so a rebuild can
	// re-derive everything with newer code.
	Raw json.RawMessage `json:"raw,omitempty"`

	// RecordedAt is when receiptd received the delivery (its event's
	// metadata received_at), where the caller knows it. It is not part of
	// the event's data (the metadata holds it): the read models set it
	// from the metadata before adding the fact to a Receipt, whose view
	// shows each stage's earliest (StageView.RecordedAt).
	RecordedAt *time.Time `json:"-"`
}

// Award is what rewards.awarded states about the receipt and its user.
type Award struct {
	TransactionID string          `json:"transaction_id,omitempty"`
	Points        decimal.Decimal `json:"points"`
	BonusPoints   decimal.Decimal `json:"bonus_points"`
	HealthPoints  decimal.Decimal `json:"health_points"`
	CO2e          decimal.Decimal `json:"co2e"`
	GreenProducts int64           `json:"green_products"`
	// Snapshot is the user's balance as the provider reported it with this
	// award.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// Snapshot is a provider-reported user balance.
type Snapshot struct {
	AvailablePoints decimal.Decimal `json:"available_points"`
	LifetimePoints  decimal.Decimal `json:"lifetime_points"`
	NumTransactions int64           `json:"num_transactions"`
}

// Newer reports whether s should be shown instead of t: snapshots arrive out
// of order, and the one with the greatest (NumTransactions, LifetimePoints,
// AvailablePoints) wins.
func (s Snapshot) Newer(t Snapshot) bool {
	if s.NumTransactions != t.NumTransactions {
		return s.NumTransactions > t.NumTransactions
	}
	if c := s.LifetimePoints.Cmp(t.LifetimePoints); c != 0 {
		return c > 0
	}
	return s.AvailablePoints.Cmp(t.AvailablePoints) > 0
}

// Failure is what receipt.failed states.
type Failure struct {
	// Code and Name as sent (5, "FAILED_VALIDATE").
	Code    int64  `json:"code"`
	Name    string `json:"name"`
	Message string `json:"message,omitempty"`
}

// UserEnrolled is the data of TypeUserEnrolled.
type UserEnrolled struct {
	Source     string          `json:"source"`
	UserID     string          `json:"user_id"`
	Email      string          `json:"email,omitempty"`
	EnrolledAt *time.Time      `json:"enrolled_at,omitempty"`
	BodySHA256 string          `json:"body_sha256"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	// Sealed, when privacy is configured, holds Email sealed under the
	// user's data key (package privacy), and Email is empty until
	// eventcodec opens it. Opaque here: nothing the domain decides needs it.
	Sealed []byte `json:"sealed,omitempty"`
}

// Quarantined is the data of TypeDeliveryQuarantined: a verified delivery
// kept with its raw body and the reason it could not be normalized, for a
// later version to re-process.
type Quarantined struct {
	Source            string          `json:"source"`
	ProviderEventType string          `json:"provider_event_type,omitempty"`
	Reason            string          `json:"reason"`
	BodySHA256        string          `json:"body_sha256"`
	Raw               json.RawMessage `json:"raw"`
}

// PointsCredited is the data of TypeUserPointsCredited: points a provider
// credited to a user outside a receipt. A credit counts once per
// TransactionID, whatever envelope it arrived in (the dedupe key is the
// transaction, not the delivery).
type PointsCredited struct {
	Source string `json:"source"`
	UserID string `json:"user_id"`
	// BalanceSource is the source whose user id namespace the credit adds
	// to: the credit appears in GET /v1/users/{user}/balance?source=
	// BalanceSource. It is the crediting source itself unless the config
	// joins it to another (a Reward account sharing Reewild's user ids).
	BalanceSource string           `json:"balance_source"`
	TransactionID string           `json:"transaction_id"`
	Points        decimal.Decimal  `json:"points"`
	OccurredAt    *time.Time       `json:"occurred_at,omitempty"`
	BodySHA256    string           `json:"body_sha256"`
	Raw           json.RawMessage  `json:"raw,omitempty"`
	Description   string           `json:"description,omitempty"`
	Amount        *decimal.Decimal `json:"amount,omitempty"`
}

// EntityEventRecorded is the data of TypeEntityEventRecorded: one provider
// delivery about an entity other than a receipt, normalized to what every
// entity has (a kind, an id, maybe a status) plus a few named attributes.
type EntityEventRecorded struct {
	Source string `json:"source"`
	// Kind is the stream category: offer, account, order, customer, …
	Kind     string `json:"kind"`
	EntityID string `json:"entity_id"`
	// EventType is the provider's canonical event type ("offer.status.updated").
	EventType string `json:"event_type"`
	// Status is the entity's status as the provider states it, if the event
	// states one (kept as sent: providers customise their statuses).
	Status string `json:"status,omitempty"`
	// StatusAt orders statuses: a status with an older StatusAt never
	// replaces a newer one, whatever the arrival order.
	StatusAt *time.Time `json:"status_at,omitempty"`
	// OccurredAt is the provider's timestamp of the event, where it has one.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	// Amount and Currency where the event carries money (an offer's
	// payout, an order's total), exact.
	Amount   *decimal.Decimal `json:"amount,omitempty"`
	Currency string           `json:"currency,omitempty"`
	// UserID links the entity to a user of the same source, where known.
	UserID string `json:"user_id,omitempty"`
	// Attributes are the other normalized fields worth showing, by name.
	Attributes map[string]string `json:"attributes,omitempty"`
	BodySHA256 string            `json:"body_sha256"`
	Raw        json.RawMessage   `json:"raw,omitempty"`
	// Sealed, when privacy is configured and the event is about a person,
	// holds the personal attributes sealed under that person's data key
	// (package privacy); Attributes then holds only the others. Opaque
	// here: eventcodec opens it for the readers that show personal data.
	Sealed []byte `json:"sealed,omitempty"`
}
