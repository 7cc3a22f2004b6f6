package projections

import (
	"errors"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
)

// Balance is a user's balance view for one source.
type Balance struct {
	Source string `json:"source"`
	UserID string `json:"user_id"`
	// Reported is the provider's newest balance snapshot (nil if none yet).
	Reported *aggregate.Snapshot `json:"reported,omitempty"`
	// DerivedPoints is the exact sum of points over the user's completed
	// receipts (each receipt once), plus credits.
	DerivedPoints decimal.Decimal `json:"derived_points"`
	// Reconciled is false when a reported snapshot's lifetime points differ
	// from DerivedPoints.
	Reconciled bool `json:"reconciled"`

	ReceiptsCompleted  int64           `json:"receipts_completed"`
	ReceiptsFailed     int64           `json:"receipts_failed"`
	ReceiptsInProgress int64           `json:"receipts_in_progress"`
	TotalCO2e          decimal.Decimal `json:"total_co2e"`
	TotalGreenProducts int64           `json:"total_green_products"`
	TotalHealthPoints  decimal.Decimal `json:"total_health_points"`
	Enrolled           bool            `json:"enrolled"`
}

// Errors of the read side; match with errors.Is.
var (
	// ErrNotFound: no such receipt or user in the read models.
	ErrNotFound = errors.New("projections: not found")
	// ErrBehind: the read models did not reach the requested position
	// within the wait allowed.
	ErrBehind = errors.New("projections: not caught up to the requested position")
	// ErrBadPageToken: a page token that this server did not issue.
	ErrBadPageToken = errors.New("projections: bad page token")
)
