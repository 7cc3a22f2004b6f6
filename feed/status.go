package feed

import "time"

// DestinationStatus is how a destination's deliveries stand (Pusher.Statuses).
type DestinationStatus struct {
	Name string
	// URL is the destination's URL without user info or query (they may
	// hold credentials).
	URL           string
	Kinds         []string
	Sources       []string
	Paused        bool
	PausedReason  string
	Delivered     uint64 // the feed position delivered up to
	Head          uint64 // the feed's head
	LagPositions  uint64 // log positions between Delivered and Head
	Lag           time.Duration
	Attempts      int64
	Failures      int64
	Consecutive   int
	LastError     string
	LastFailureAt time.Time // zero: none since start
	LastSuccessAt time.Time
	NextAttemptAt time.Time // zero: not backing off
	DeadLetters   int
}

// Outcomes of a dead letter.
const (
	// DeadPaused: the destination paused on the event; resuming retries it.
	DeadPaused = "paused"
	// DeadSkipped: the destination gave up on the event (its
	// max_attempts) and went on.
	DeadSkipped = "skipped"
)

// DeadLetter is an event a destination stopped on or gave up on.
type DeadLetter struct {
	Position  uint64    `json:"position"`
	EventID   string    `json:"event_id"`
	Kind      string    `json:"kind"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	At        time.Time `json:"at"`
	Outcome   string    `json:"outcome"`
}
