package projections

import (
	"errors"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

// Balance is a user's balance view for one source (a user id namespace).
type Balance struct {
	Source string `json:"source"`
	UserID string `json:"user_id"`
	// Reported is the provider's newest balance snapshot (nil if none yet).
	Reported *aggregate.Snapshot `json:"reported,omitempty"`
	// AwardedPoints is the exact sum of points over the user's completed
	// receipts, each receipt once.
	AwardedPoints decimal.Decimal `json:"awarded_points"`
	// CreditedPoints is the exact sum of the points credited to the user
	// outside receipts (aggregate.TypeUserPointsCredited events whose
	// BalanceSource is Source), each credit event once.
	CreditedPoints decimal.Decimal `json:"credited_points"`
	// DerivedPoints is AwardedPoints + CreditedPoints, exact.
	DerivedPoints decimal.Decimal `json:"derived_points"`
	// Reconciled is false when a reported snapshot's lifetime points differ
	// from AwardedPoints.
	//
	// The snapshot is compared with AwardedPoints, not DerivedPoints, on
	// purpose: the snapshot comes with a receipt award from the receipt
	// provider, which knows its own awards but not the credits another
	// source (a Reward account joined to this user namespace) adds.
	// Comparing it with DerivedPoints would flag every user with a credit
	// as unreconciled; comparing it with AwardedPoints flags exactly the
	// disagreements between the provider and the receipts receiptd has
	// seen, which is what reconciliation looks for. A user with no
	// snapshot is reconciled.
	Reconciled bool `json:"reconciled"`

	ReceiptsCompleted  int64           `json:"receipts_completed"`
	ReceiptsFailed     int64           `json:"receipts_failed"`
	ReceiptsInProgress int64           `json:"receipts_in_progress"`
	TotalCO2e          decimal.Decimal `json:"total_co2e"`
	TotalGreenProducts int64           `json:"total_green_products"`
	TotalHealthPoints  decimal.Decimal `json:"total_health_points"`
	Enrolled           bool            `json:"enrolled"`
	// AmountAnomalies counts the user's receipts whose view flags an amount
	// outside the sanity bounds (aggregate.AnomalyAmountOutOfBounds) and the
	// credits to the user whose points are outside them. Such amounts are
	// kept as sent and counted in the sums above: this says to look.
	AmountAnomalies int64 `json:"amount_anomalies"`
}

// MaxTimeline is the number of events an Entity's timeline keeps: the
// latest by log position. Entity.EventCount counts them all.
const MaxTimeline = 200

// Entity is the view of one entity other than a receipt (an offer, an
// account, an order, a customer, a redemption, a user's trigger events),
// built from its aggregate.TypeEntityEventRecorded events and keyed by
// (Source, Kind, ID).
//
// # Current status
//
// Status is the status of the event with the greatest StatusAt, whatever
// the order the events arrived in: a status with an older StatusAt never
// replaces a newer one. Two statuses with the same StatusAt are ordered by
// their body hash (the greater wins), so the choice depends only on the set
// of events. A status stated without a StatusAt ranks below every status
// with one; among those, the one later in the log wins (there is nothing
// else to order them by). Events that state no status do not change it.
//
// # Amount and user
//
// Amount, Currency and UserID come from the latest event that states an
// amount (respectively a user id), "latest" meaning the greatest provider
// time (OccurredAt, else StatusAt), ties broken by body hash; events with
// no provider time rank below those with one, later in the log first.
// Currency is the one stated with that amount (empty if it stated none).
//
// # Seen
//
// FirstSeen and LastSeen are when receiptd recorded the entity's first and
// latest events (the store's RecordedAt of the events first and last by log
// position): the time receiptd saw them, not the provider's time, which
// the timeline carries per event as OccurredAt.
type Entity struct {
	Source string `json:"source"`
	// Kind is the stream category: offer, account, order, customer, user, …
	Kind string `json:"kind"`
	ID   string `json:"id"`

	// Status is the current status, as the provider states it; empty if no
	// event stated one.
	Status string `json:"status,omitempty"`
	// StatusAt is the provider's time of the current status; nil if the
	// current status came without one.
	StatusAt *time.Time `json:"status_at,omitempty"`

	Amount   *decimal.Decimal `json:"amount,omitempty"`
	Currency string           `json:"currency,omitempty"`
	UserID   string           `json:"user_id,omitempty"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// FirstPosition and LastPosition are the commit positions of the first
	// and latest events. Lists are ordered by FirstPosition, newest first.
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`

	// EventCount is the number of events applied to the entity, including
	// those that fell out of Timeline.
	EventCount int64 `json:"event_count"`
	// Timeline holds the latest MaxTimeline events in log order, oldest
	// first. DB.Entity fills it; DB.Entities leaves it nil.
	Timeline []EntityEvent `json:"timeline,omitempty"`
}

// EntityEvent is one event of an entity's timeline: the normalized fields
// of an aggregate.EntityEventRecorded and where it sits in the log. The
// provider's raw body stays in the log.
type EntityEvent struct {
	// EventType is the provider's canonical event type ("offer.status.updated").
	EventType  string           `json:"event_type"`
	Status     string           `json:"status,omitempty"`
	StatusAt   *time.Time       `json:"status_at,omitempty"`
	OccurredAt *time.Time       `json:"occurred_at,omitempty"`
	Amount     *decimal.Decimal `json:"amount,omitempty"`
	Currency   string           `json:"currency,omitempty"`
	UserID     string           `json:"user_id,omitempty"`
	// Attributes are the other normalized fields the provider's event
	// carries, by name.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Sealed holds the event's personal attributes sealed under its
	// subject's data key, as the log holds them (package privacy): the
	// read models never hold personal data in the clear, so destroying
	// the key erases it here too. The API opens it.
	Sealed     []byte `json:"sealed,omitempty"`
	BodySHA256 string `json:"body_sha256"`
	// Position is the event's commit position; RecordedAt when the store
	// recorded it.
	Position   uint64    `json:"position"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Errors of the read side; match with errors.Is.
var (
	// ErrNotFound: no such receipt, user or entity in the read models.
	ErrNotFound = errors.New("projections: not found")
	// ErrBehind: the read models did not reach the requested position
	// within the wait allowed.
	ErrBehind = errors.New("projections: not caught up to the requested position")
	// ErrBadPageToken: a page token that this server did not issue (or
	// issued for another list), or a page size that is not positive.
	ErrBadPageToken = errors.New("projections: bad page token")
	// ErrBadQuery: a query the read models cannot answer as asked (a
	// statistics range that is not days, or too long).
	ErrBadQuery = errors.New("projections: bad query")
	// ErrUnknownProjection: a rebuild of a read model that does not exist
	// (see Names).
	ErrUnknownProjection = errors.New("projections: unknown projection")
	// ErrBusy: a rebuild or an audit is already running on the read
	// models; run one at a time.
	ErrBusy = errors.New("projections: a rebuild or audit is already running")
	// ErrLocked: the read-model file is held open by another process (a
	// running server): rebuild or audit through that server instead.
	ErrLocked = errors.New("projections: read-model file locked by another process")
	// ErrAheadOfLog: the read models hold a position the log does not
	// reach (they were built from another log): only a full rebuild can
	// make them agree.
	ErrAheadOfLog = errors.New("projections: read models are ahead of the log")
)
