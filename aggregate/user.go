package aggregate

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// User is the user aggregate of one source: the enrolment facts reported for
// a user id. Like Receipt, its view depends only on the set of facts.
type User struct {
	source string
	id     string
	facts  map[string]UserEnrolled // by body hash
}

// NewUser returns an empty user aggregate.
func NewUser(source, userID string) *User {
	return &User{source: source, id: userID, facts: make(map[string]UserEnrolled)}
}

// Add records an enrolment fact; false when it was already known.
func (u *User) Add(f UserEnrolled) (bool, error) {
	if f.UserID != u.id || (f.Source != "" && f.Source != u.source) {
		return false, fmt.Errorf("aggregate: add enrolment of %s/%s to user %s/%s: %w", f.Source, f.UserID, u.source, u.id, ErrBadEvent)
	}
	if f.BodySHA256 == "" {
		return false, fmt.Errorf("aggregate: add enrolment to user %s: no body hash: %w", u.id, ErrBadEvent)
	}
	if _, ok := u.facts[f.BodySHA256]; ok {
		return false, nil
	}
	f.Raw = nil
	u.facts[f.BodySHA256] = f
	return true, nil
}

// UserView is a user's enrolment as resolved from its facts.
type UserView struct {
	Source   string `json:"source"`
	UserID   string `json:"user_id"`
	Enrolled bool   `json:"enrolled"`
	Email    string `json:"email,omitempty"`
	// EnrolledAt is the earliest enrolment time reported.
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"`
	// Corrections counts the further, different enrolment bodies.
	Corrections int `json:"corrections,omitempty"`
}

// View resolves the user's enrolment.
func (u *User) View() UserView {
	v := UserView{Source: u.source, UserID: u.id, Enrolled: len(u.facts) > 0}
	if len(u.facts) > 1 {
		v.Corrections = len(u.facts) - 1
	}
	var chosen *UserEnrolled
	for _, f := range u.facts {
		if f.EnrolledAt != nil && (v.EnrolledAt == nil || f.EnrolledAt.Before(*v.EnrolledAt)) {
			v.EnrolledAt = cloneTime(f.EnrolledAt)
		}
		if chosen == nil || f.BodySHA256 > chosen.BodySHA256 {
			c := f
			chosen = &c
		}
	}
	if chosen != nil {
		v.Email = chosen.Email
	}
	return v
}

// Totals is what a set of receipts contributes to a user's balance view.
// Points, CO2e, green products and health points count for completed
// receipts only: they are what was credited.
type Totals struct {
	Completed     int64           `json:"completed"`
	Failed        int64           `json:"failed"`
	InProgress    int64           `json:"in_progress"`
	Points        decimal.Decimal `json:"points"`
	CO2e          decimal.Decimal `json:"co2e"`
	GreenProducts int64           `json:"green_products"`
	HealthPoints  decimal.Decimal `json:"health_points"`
	// AmountAnomalies counts the receipts whose view flags an amount
	// outside the sanity bounds (AnomalyAmountOutOfBounds), whatever their
	// status.
	AmountAnomalies int64 `json:"amount_anomalies,omitempty"`
}

// Add adds one receipt's contribution (sign +1) or removes it (sign -1).
// Exact: adding and then removing a view restores the totals to the digit.
func (t *Totals) Add(v ReceiptView, sign int64) {
	d := decimal.NewFromInt(sign)
	if v.HasAmountAnomaly() {
		t.AmountAnomalies += sign
	}
	switch v.Status {
	case StatusCompleted:
		t.Completed += sign
		t.Points = t.Points.Add(v.Points.Mul(d))
		t.CO2e = t.CO2e.Add(v.CO2e.Mul(d))
		t.HealthPoints = t.HealthPoints.Add(v.HealthPoints.Mul(d))
		t.GreenProducts += sign * v.GreenProducts
	case StatusFailed:
		t.Failed += sign
	default:
		t.InProgress += sign
	}
}
