package aggregate

import "fmt"

// ConflictPolicy says what a delivery whose slot already holds a different
// fact becomes.
type ConflictPolicy int

const (
	// Correct appends the delivery flagged as a correction (an anomaly the
	// views count). Reewild's rule.
	Correct ConflictPolicy = iota
	// Reject refuses the delivery with ErrConflict.
	Reject
)

// Fact is a verified, normalized delivery, ready to be decided against its
// stream.
type Fact struct {
	Stream string
	Type   string
	// Data is the normalized payload (StageRecorded, UserEnrolled, …); it
	// must marshal to JSON.
	Data       any
	DedupeKey  string
	SlotKey    string
	OnConflict ConflictPolicy
}

// Outcome of Decide.
type Outcome int

const (
	// Append: the fact is new; append it.
	Append Outcome = iota + 1
	// Duplicate: an exact re-delivery; append nothing, answer success.
	Duplicate
)

func (o Outcome) String() string {
	switch o {
	case Append:
		return "append"
	case Duplicate:
		return "duplicate"
	default:
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
}

// Decision is what Decide concluded.
type Decision struct {
	Outcome Outcome
	// Correction is set when the fact's slot already holds a different fact
	// and the policy is Correct.
	Correction bool
}

// Decide compares f with the metadata of the events already in its stream
// (in any order) and says whether to append it. It never depends on the
// store's event-id cache: the stream is the record.
func Decide(history []Metadata, f Fact) (Decision, error) {
	if f.DedupeKey == "" {
		return Decision{}, fmt.Errorf("aggregate: decide %s on %s: empty dedupe key: %w", f.Type, f.Stream, ErrUnnormalizable)
	}
	slotTaken := false
	for _, m := range history {
		if m.DedupeKey == f.DedupeKey {
			return Decision{Outcome: Duplicate}, nil
		}
		if f.SlotKey != "" && m.SlotKey == f.SlotKey {
			slotTaken = true
		}
	}
	if slotTaken {
		if f.OnConflict == Reject {
			return Decision{}, fmt.Errorf("aggregate: decide %s on %s: slot %q already holds another delivery: %w", f.Type, f.Stream, f.SlotKey, ErrConflict)
		}
		return Decision{Outcome: Append, Correction: true}, nil
	}
	return Decision{Outcome: Append}, nil
}
