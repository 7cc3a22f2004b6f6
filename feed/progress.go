package feed

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Progress keeps each destination's delivery state durable: the position
// it delivered up to, whether it is paused, and its dead letters, in a
// small bbolt file of its own beside the read models (destinations.db in
// the data dir). Every change is committed and fsynced before it is
// reported, so a position saved after a 2xx survives a crash of the
// process or of the machine.
//
// It is kept apart from the read models' file on purpose: that file is
// derived data, discarded and rebuilt from the log (a schema change, a
// machine restart before its unsynced commits reached the disk, an
// offline rebuild), and a rebuild must not send every destination the
// whole feed again. Feed positions are a function of the log, so a
// position saved here stays valid across every rebuild.
type Progress struct {
	mu     sync.Mutex
	db     *bolt.DB
	closed bool
}

// The buckets of the progress file.
var (
	// bucketDestinations: destination name → JSON DestinationState.
	bucketDestinations = []byte("destinations")
	// bucketDead: destination name → a bucket of be64(position) → JSON
	// DeadLetter.
	bucketDead = []byte("dead_letters")
)

// MaxDeadLetters is the number of dead letters kept per destination: the
// latest by position.
const MaxDeadLetters = 1000

// DestinationState is what Progress keeps of a destination.
type DestinationState struct {
	// Position is the feed position delivered up to.
	Position uint64 `json:"position"`
	Paused   bool   `json:"paused,omitempty"`
	// PausedReason says why ("admin", or the failures in a row).
	PausedReason string `json:"paused_reason,omitempty"`
}

// OpenProgress opens (creating if needed) the progress file at path. A
// file another process holds fails after lockTimeout.
func OpenProgress(path string, lockTimeout time.Duration) (*Progress, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("feed: open progress %s: held by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("feed: open progress %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDestinations, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("feed: open progress %s: %w", path, err)
	}
	return &Progress{db: db}, nil
}

// Close closes the file.
func (p *Progress) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.db.Close()
}

func (p *Progress) update(op string, fn func(tx *bolt.Tx) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("feed: %s: %w", op, ErrClosed)
	}
	if err := p.db.Update(fn); err != nil {
		return fmt.Errorf("feed: %s: %w", op, err)
	}
	return nil
}

func (p *Progress) view(op string, fn func(tx *bolt.Tx) error) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("feed: %s: %w", op, ErrClosed)
	}
	if err := p.db.View(fn); err != nil {
		return fmt.Errorf("feed: %s: %w", op, err)
	}
	return nil
}

// Load returns a destination's saved state (the zero state if none).
func (p *Progress) Load(name string) (DestinationState, error) {
	var s DestinationState
	err := p.view("load "+name, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDestinations).Get([]byte(name))
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &s)
	})
	return s, err
}

// Save makes a destination's state durable.
func (p *Progress) Save(name string, s DestinationState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return p.update("save "+name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDestinations).Put([]byte(name), b)
	})
}

// AddDeadLetter records a dead letter (replacing one at the same
// position), keeping the latest MaxDeadLetters.
func (p *Progress) AddDeadLetter(name string, d DeadLetter) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return p.update("dead letter of "+name, func(tx *bolt.Tx) error {
		dead, err := tx.Bucket(bucketDead).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		if err := dead.Put(binary.BigEndian.AppendUint64(nil, d.Position), b); err != nil {
			return err
		}
		c := dead.Cursor()
		for n := dead.Stats().KeyN; n > MaxDeadLetters; n-- {
			if k, _ := c.First(); k != nil {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// DeadLetters returns a destination's dead letters, newest first.
func (p *Progress) DeadLetters(name string) ([]DeadLetter, error) {
	var out []DeadLetter
	err := p.view("dead letters of "+name, func(tx *bolt.Tx) error {
		dead := tx.Bucket(bucketDead).Bucket([]byte(name))
		if dead == nil {
			return nil
		}
		c := dead.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var d DeadLetter
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// deadCount returns the number of a destination's dead letters.
func (p *Progress) deadCount(name string) (int, error) {
	n := 0
	err := p.view("dead letters of "+name, func(tx *bolt.Tx) error {
		if dead := tx.Bucket(bucketDead).Bucket([]byte(name)); dead != nil {
			n = dead.Stats().KeyN
		}
		return nil
	})
	return n, err
}
