package aggregate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Receipt is the receipt aggregate: the set of facts reported about one
// receipt. Its View is a function of that set only, so every permutation of
// the same deliveries, with any duplicates, yields the same view.
//
// Where one stage was reported with several different bodies (a
// correction), the view shows one of them chosen by the facts themselves —
// the latest provider timestamp, then the greatest body hash — rather than
// the latest by arrival, because arrival order is exactly what must not
// matter. Every further body is counted as a correction anomaly.
type Receipt struct {
	source string
	id     string
	// facts by stage (index in Stages), each body hash once, in body
	// hash order.
	facts [numStages][]StageRecorded
	// recorded is, per stage, the earliest RecordedAt of the facts added
	// for it, exact re-deliveries included (zero if none had one): a min,
	// so it does not depend on the order facts are added in.
	recorded [numStages]time.Time
}

const numStages = 7

// stageIndex returns the index of s in Stages, or -1.
func stageIndex(s Stage) int {
	switch s {
	case StageUploaded:
		return 0
	case StageExtracted:
		return 1
	case StageEnriched:
		return 2
	case StageValidated:
		return 3
	case StageScored:
		return 4
	case StageAwarded:
		return 5
	case StageFailed:
		return 6
	}
	return -1
}

// NewReceipt returns an empty receipt aggregate.
func NewReceipt(source, receiptID string) *Receipt {
	return &Receipt{source: source, id: receiptID}
}

// ID returns the receipt id.
func (r *Receipt) ID() string { return r.id }

// Add records a fact. It returns false when the fact (same stage, same body
// hash) was already known: an exact re-delivery. A fact for another receipt
// or with an invalid stage is an error.
func (r *Receipt) Add(f StageRecorded) (bool, error) {
	if f.ReceiptID != r.id || (f.Source != "" && f.Source != r.source) {
		return false, fmt.Errorf("aggregate: add %s fact of receipt %s/%s to receipt %s/%s: %w", f.Stage, f.Source, f.ReceiptID, r.source, r.id, ErrBadEvent)
	}
	si := stageIndex(f.Stage)
	if si < 0 {
		return false, fmt.Errorf("aggregate: add fact to receipt %s: stage %q: %w", r.id, f.Stage, ErrBadEvent)
	}
	if f.BodySHA256 == "" {
		return false, fmt.Errorf("aggregate: add %s fact to receipt %s: no body hash: %w", f.Stage, r.id, ErrBadEvent)
	}
	if t := f.RecordedAt; t != nil && (r.recorded[si].IsZero() || t.Before(r.recorded[si])) {
		r.recorded[si] = *t
	}
	fs := r.facts[si]
	i, found := slices.BinarySearchFunc(fs, f.BodySHA256, func(g StageRecorded, h string) int { return strings.Compare(g.BodySHA256, h) })
	if found {
		return false, nil
	}
	f.Raw = nil        // the view never needs the raw body; the log keeps it
	f.RecordedAt = nil // kept per stage (recorded)
	r.facts[si] = slices.Insert(fs, i, f)
	return true, nil
}

// Source returns the receipt's source.
func (r *Receipt) Source() string { return r.source }

// StageFacts returns the distinct facts of the stage Stages[i], in body
// hash order, without raw bodies. The slice is the aggregate's own: the
// caller must not modify it, and it is valid until the next Add.
func (r *Receipt) StageFacts(i int) []StageRecorded { return r.facts[i] }

// StageRecordedAt returns when receiptd first recorded the stage
// Stages[i]: the earliest RecordedAt of its facts (exact re-deliveries
// included); zero if none had one.
func (r *Receipt) StageRecordedAt(i int) time.Time { return r.recorded[i] }

// Len returns the number of distinct facts.
func (r *Receipt) Len() int {
	n := 0
	for _, fs := range r.facts {
		n += len(fs)
	}
	return n
}

// Facts returns every distinct fact, in a canonical order (stage order, then
// body hash), without raw bodies: the aggregate's state, as a projection may
// persist it. Adding them to a new Receipt restores the same aggregate
// (each carries its stage's StageRecordedAt as RecordedAt, if known).
func (r *Receipt) Facts() []StageRecorded {
	var out []StageRecorded
	for i, fs := range r.facts {
		n := len(out)
		out = append(out, fs...)
		if t := r.recorded[i]; !t.IsZero() {
			for j := n; j < len(out); j++ {
				out[j].RecordedAt = &t
			}
		}
	}
	return out
}

// chosen returns the fact the view shows for a stage, and how many
// different facts the stage has.
func (r *Receipt) chosen(s Stage) (*StageRecorded, int, bool) {
	fs := r.facts[stageIndex(s)]
	var best *StageRecorded
	for i := range fs {
		if best == nil || factAfter(&fs[i], best) {
			best = &fs[i]
		}
	}
	return best, len(fs), best != nil
}

// factAfter orders two facts of one stage: a later provider timestamp wins;
// a fact with a timestamp wins over one without; then the greater body hash.
func factAfter(a, b *StageRecorded) bool {
	switch {
	case a.OccurredAt != nil && b.OccurredAt == nil:
		return true
	case a.OccurredAt == nil && b.OccurredAt != nil:
		return false
	case a.OccurredAt != nil && !a.OccurredAt.Equal(*b.OccurredAt):
		return a.OccurredAt.After(*b.OccurredAt)
	}
	return a.BodySHA256 > b.BodySHA256
}

// View resolves the facts into the receipt's state.
func (r *Receipt) View() ReceiptView {
	v := ReceiptView{
		ReceiptID:    r.id,
		Source:       r.source,
		Status:       StatusInProgress,
		Points:       decimal.Zero,
		BonusPoints:  decimal.Zero,
		HealthPoints: decimal.Zero,
		CO2e:         decimal.Zero,
		Stages:       make([]StageView, 0, len(Stages)),
	}
	var chosen [numStages]*StageRecorded
	var recorded *[numStages]time.Time
	for i, s := range Stages {
		f, n, ok := r.chosen(s)
		chosen[i] = f
		sv := StageView{Stage: s, Reported: ok}
		if ok {
			sv.OccurredAt = cloneTime(f.OccurredAt)
			if !r.recorded[i].IsZero() {
				if recorded == nil { // one allocation for every stage's time
					recorded = new([numStages]time.Time)
				}
				recorded[i] = r.recorded[i]
				sv.RecordedAt = &recorded[i]
			}
			sv.Corrections = n - 1
			if n > 1 {
				v.Anomalies = append(v.Anomalies, Anomaly{Kind: AnomalyCorrection, Detail: correctionDetail(s, r.facts[i])})
			}
		}
		v.Stages = append(v.Stages, sv)
	}

	awarded, hasAward := chosen[5], chosen[5] != nil
	failed, hasFailure := chosen[6], chosen[6] != nil
	switch {
	case hasAward:
		v.Status = StatusCompleted
	case hasFailure:
		v.Status = StatusFailed
	}
	if hasAward && hasFailure {
		v.Anomalies = append(v.Anomalies, Anomaly{
			Kind:   AnomalyConflictingTerminals,
			Detail: "both AWARDED and FAILED were reported; the receipt counts as COMPLETED because its points were credited",
		})
	}
	if hasAward && awarded.Award != nil {
		a := awarded.Award
		v.Points, v.BonusPoints, v.HealthPoints, v.CO2e = a.Points, a.BonusPoints, a.HealthPoints, a.CO2e
		v.GreenProducts = a.GreenProducts
		v.TransactionID = a.TransactionID
	}
	if hasFailure && failed.Failure != nil {
		fl := *failed.Failure
		v.Failure = &fl
	}
	for _, f := range r.facts[5] {
		if f.Award != nil && f.Award.Snapshot != nil && (v.Snapshot == nil || f.Award.Snapshot.Newer(*v.Snapshot)) {
			s := *f.Award.Snapshot
			v.Snapshot = &s
		}
	}

	// Merchant details: from the latest pipeline stage that states them.
	for i := 4; i >= 0; i-- { // SCORED back to UPLOADED
		f := chosen[i]
		if f == nil {
			continue
		}
		if v.Merchant == "" && f.Merchant != "" {
			v.Merchant = f.Merchant
		}
		if v.Currency == "" && f.Currency != "" {
			v.Currency = f.Currency
		}
		if v.Amount == nil && f.Amount != nil {
			a := *f.Amount
			v.Amount = &a
		}
	}

	if out := v.outOfBounds(); len(out) > 0 {
		v.Anomalies = append(v.Anomalies, Anomaly{
			Kind:   AnomalyAmountOutOfBounds,
			Detail: fmt.Sprintf("amounts outside the sanity bounds [0, %d]: %s; kept as sent", MaxAmount, strings.Join(out, ", ")),
		})
	}
	v.UserID, v.UserIDs = r.user(&chosen)
	if len(v.UserIDs) > 1 {
		v.Anomalies = append(v.Anomalies, Anomaly{
			Kind:   AnomalyUserMismatch,
			Detail: fmt.Sprintf("events name different users: %s; shown as %s", strings.Join(v.UserIDs, ", "), v.UserID),
		})
	}
	return v
}

// user picks the receipt's user: the chosen AWARDED fact's, else the chosen
// UPLOADED fact's, else the first stage in pipeline order that names one.
// It also returns every user id any fact names, sorted.
func (r *Receipt) user(chosen *[numStages]*StageRecorded) (string, []string) {
	var all []string
	for _, fs := range r.facts {
		for i := range fs {
			if u := fs[i].UserID; u != "" && !slices.Contains(all, u) {
				all = append(all, u)
			}
		}
	}
	slices.Sort(all)
	if all == nil {
		all = []string{}
	}
	for _, i := range [...]int{5, 0, 0, 1, 2, 3, 4, 5, 6} { // AWARDED, UPLOADED, then pipeline order
		if f := chosen[i]; f != nil && f.UserID != "" {
			return f.UserID, all
		}
	}
	// The chosen facts name no user, but a correction might.
	if len(all) > 0 {
		return all[0], all
	}
	return "", all
}

func correctionDetail(s Stage, byHash []StageRecorded) string {
	if s == StageAwarded {
		var txs []string
		for _, f := range byHash {
			if f.Award != nil && f.Award.TransactionID != "" && !slices.Contains(txs, f.Award.TransactionID) {
				txs = append(txs, f.Award.TransactionID)
			}
		}
		slices.Sort(txs)
		if len(txs) > 1 {
			return fmt.Sprintf("AWARDED reported %d times with different bodies (transactions %s); credited once", len(byHash), strings.Join(txs, ", "))
		}
	}
	return fmt.Sprintf("%s reported with %d different bodies", s, len(byHash))
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
