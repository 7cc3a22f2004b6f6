package privacy

import (
	"context"
	"time"
)

// Store keeps the wrapped data keys: which key is each subject's current
// one, each key by its id, which keys were destroyed, and the wrapped
// pepper. It holds no key in the clear: every key it stores is wrapped by
// a KEK it never sees. FileStore keeps them in a small file of their own
// (the embedded log), StreamStore in KurrentDB streams of their own.
//
// Every method is safe for concurrent use, also by several processes
// sharing one store (StreamStore).
type Store interface {
	// Current returns the subject's current key record; ok is false when
	// the subject has none (never seen, or forgotten since).
	Current(ctx context.Context, s Subject) (rec Record, ok bool, err error)

	// Get returns the record of key id: an error matching ErrForgotten
	// when it was destroyed, ErrUnknownKey when the store never held it.
	Get(ctx context.Context, id KeyID) (Record, error)

	// Create makes rec the subject's current key unless the subject has
	// one, durably, and returns the subject's current record: rec, or the
	// one another writer created first.
	Create(ctx context.Context, s Subject, rec Record) (Record, error)

	// Destroy destroys the subject's current key so that no copy of it
	// survives in the store (on disk), remembers its id as destroyed and
	// the subject as forgotten at at, and returns the ids destroyed (none
	// when the subject had no current key). The subject's next Create
	// starts a fresh key.
	Destroy(ctx context.Context, s Subject, at time.Time) ([]KeyID, error)

	// Forgotten returns when the subject was last forgotten; zero if never.
	Forgotten(ctx context.Context, s Subject) (time.Time, error)

	// Pepper returns the stored wrapped pepper, storing candidate first if
	// there is none.
	Pepper(ctx context.Context, candidate []byte) ([]byte, error)

	// Close releases the store.
	Close() error
}

// Record is a stored data key: its id and the key wrapped by a KEK.
type Record struct {
	ID      KeyID
	Wrapped []byte
}

// Rewrapper is a Store whose records can all be rewritten in place: a KEK
// rotation rewraps every key under the new KEK, after which the old KEK
// may be dropped from the config. rewrap returns the new wrapped bytes
// and true for a record to change.
type Rewrapper interface {
	Rewrap(ctx context.Context, pepper func([]byte) ([]byte, bool, error), key func(Record) ([]byte, bool, error)) (int, error)
}

// KeyDestroyer is a Store that can destroy keys by id, whoever they
// belong to: what re-applies the forgets a log records to a key store
// restored from a backup older than them (Keyring.DestroyKeys).
type KeyDestroyer interface {
	// DestroyKeys destroys those of ids the store still holds (and a
	// subject's claim on one as its current key) so that no copy survives
	// in the store, and returns the ids it destroyed.
	DestroyKeys(ctx context.Context, ids []KeyID, at time.Time) ([]KeyID, error)
}
