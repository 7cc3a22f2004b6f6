package privacy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// Log is what StreamStore needs of a log: eventstore.Store's append and
// stream read, and a tombstone (a hard delete: the stream's events are
// gone from reads at once and from the disk at the next scavenge, and the
// stream can never be written again). eventstore/esdb's Store is one.
type Log interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error)
	// ReadStream reads a stream; a tombstoned one fails with an error
	// matching eventstore.ErrStreamDeleted.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error)
	Tombstone(ctx context.Context, stream string) error
}

// Stream names and event types of StreamStore. The categories are not
// among those receiptd's read models follow, so no read model and no
// $all subscription of receiptd ever reads them.
const (
	keyStreamPrefix     = "privacykey-"
	subjectStreamPrefix = "privacysubject-"
	pepperStream        = "privacymeta-pepper"

	typeKeyCreated       = "privacy.key_created.v1"
	typeSubjectKeyed     = "privacy.subject_keyed.v1"
	typeSubjectForgotten = "privacy.subject_forgotten.v1"
	typePepperCreated    = "privacy.pepper_created.v1"
)

// KeyStream returns the stream holding a data key on KurrentDB.
func KeyStream(id KeyID) string { return keyStreamPrefix + id.String() }

// SubjectStream returns the stream naming a subject's keys on KurrentDB.
func SubjectStream(s Subject) string { return subjectStreamPrefix + s.Source + "." + s.ID }

// StreamStore keeps the data keys in KurrentDB, for receiptd on
// KurrentDB (several nodes share the keys as they share the log): each
// key alone in its stream privacykey-{id} (one event: the wrapped key);
// each subject's keys in privacysubject-{source}.{id} (which key is
// current, when the subject was forgotten); the pepper in
// privacymeta-pepper. Destroy tombstones the key's stream: reads stop at
// once, and the bytes leave the server's disks when the operator runs a
// scavenge on every node (see the README's "Personal data").
type StreamStore struct {
	log Log
}

// NewStreamStore returns a StreamStore on log.
func NewStreamStore(log Log) *StreamStore { return &StreamStore{log: log} }

// maxStreamAttempts bounds the retries when another node moved a subject's
// stream at the same moment.
const maxStreamAttempts = 8

type wrappedData struct {
	Wrapped string `json:"wrapped"`
}

type keyedData struct {
	KeyID string `json:"key_id"`
}

type forgottenData struct {
	KeyIDs []string  `json:"key_ids"`
	At     time.Time `json:"at"`
}

func newEvent(typ string, v any) (aggregate.Event, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return aggregate.Event{}, err
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return aggregate.Event{}, err
	}
	return aggregate.Event{ID: id.String(), Type: typ, Data: data, Metadata: []byte("{}")}, nil
}

// subjectState reads a subject's stream: its current key id, when it was
// last forgotten, and the events read (for the expected revision).
func (s *StreamStore) subjectState(ctx context.Context, sub Subject) (cur *KeyID, forgotten time.Time, read []eventstore.RecordedEvent, err error) {
	read, err = s.log.ReadStream(ctx, SubjectStream(sub), 0, 0)
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	for _, e := range read {
		switch e.Type {
		case typeSubjectKeyed:
			var d keyedData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return nil, time.Time{}, nil, fmt.Errorf("privacy: %s at %d: %w", SubjectStream(sub), e.Revision, err)
			}
			id, err := ParseKeyID(d.KeyID)
			if err != nil {
				return nil, time.Time{}, nil, err
			}
			cur = &id
		case typeSubjectForgotten:
			var d forgottenData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return nil, time.Time{}, nil, fmt.Errorf("privacy: %s at %d: %w", SubjectStream(sub), e.Revision, err)
			}
			cur, forgotten = nil, d.At
		}
	}
	return cur, forgotten, read, nil
}

// Current implements Store.
func (s *StreamStore) Current(ctx context.Context, sub Subject) (Record, bool, error) {
	cur, _, _, err := s.subjectState(ctx, sub)
	if err != nil || cur == nil {
		return Record{}, false, err
	}
	rec, err := s.Get(ctx, *cur)
	if errors.Is(err, ErrForgotten) {
		return Record{}, false, nil
	}
	return rec, err == nil, err
}

// Get implements Store.
func (s *StreamStore) Get(ctx context.Context, id KeyID) (Record, error) {
	read, err := s.log.ReadStream(ctx, KeyStream(id), 0, 1)
	switch {
	case errors.Is(err, eventstore.ErrStreamDeleted):
		return Record{}, fmt.Errorf("privacy: key %s: destroyed: %w", id, ErrForgotten)
	case err != nil:
		return Record{}, err
	case len(read) == 0 || read[0].Type != typeKeyCreated:
		return Record{}, fmt.Errorf("privacy: key %s: %w", id, ErrUnknownKey)
	}
	var d wrappedData
	if err := json.Unmarshal(read[0].Data, &d); err != nil {
		return Record{}, fmt.Errorf("privacy: key %s: %w", id, err)
	}
	w, err := base64.StdEncoding.DecodeString(d.Wrapped)
	if err != nil {
		return Record{}, fmt.Errorf("privacy: key %s: %w", id, err)
	}
	return Record{ID: id, Wrapped: w}, nil
}

// Create implements Store: the key's stream first, then the subject's
// stream at the revision read; if another node keyed the subject
// meanwhile, its key wins and the new stream is tombstoned.
func (s *StreamStore) Create(ctx context.Context, sub Subject, rec Record) (Record, error) {
	ke, err := newEvent(typeKeyCreated, wrappedData{Wrapped: base64.StdEncoding.EncodeToString(rec.Wrapped)})
	if err != nil {
		return Record{}, err
	}
	written := false
	for attempt := 1; ; attempt++ {
		cur, _, read, err := s.subjectState(ctx, sub)
		if err != nil {
			return Record{}, err
		}
		if cur != nil {
			if other, err := s.Get(ctx, *cur); err == nil {
				if written {
					_ = s.log.Tombstone(ctx, KeyStream(rec.ID))
				}
				return other, nil
			} else if !errors.Is(err, ErrForgotten) {
				return Record{}, err
			}
		}
		if !written {
			if _, err := s.log.Append(ctx, KeyStream(rec.ID), eventstore.NoStream, ke); err != nil {
				return Record{}, err
			}
			written = true
		}
		se, err := newEvent(typeSubjectKeyed, keyedData{KeyID: rec.ID.String()})
		if err != nil {
			return Record{}, err
		}
		_, err = s.log.Append(ctx, SubjectStream(sub), eventstore.ExpectedAfter(read), se)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, eventstore.ErrWrongRevision) || attempt >= maxStreamAttempts {
			return Record{}, err
		}
	}
}

// Destroy implements Store: the key's stream is tombstoned, then the
// subject's stream records the forget.
func (s *StreamStore) Destroy(ctx context.Context, sub Subject, at time.Time) ([]KeyID, error) {
	for attempt := 1; ; attempt++ {
		cur, _, read, err := s.subjectState(ctx, sub)
		if err != nil {
			return nil, err
		}
		var ids []KeyID
		d := forgottenData{At: at.UTC(), KeyIDs: []string{}}
		if cur != nil {
			if err := s.log.Tombstone(ctx, KeyStream(*cur)); err != nil && !errors.Is(err, eventstore.ErrStreamDeleted) {
				return nil, err
			}
			ids = append(ids, *cur)
			d.KeyIDs = append(d.KeyIDs, cur.String())
		}
		fe, err := newEvent(typeSubjectForgotten, d)
		if err != nil {
			return nil, err
		}
		_, err = s.log.Append(ctx, SubjectStream(sub), eventstore.ExpectedAfter(read), fe)
		if err == nil {
			return ids, nil
		}
		if !errors.Is(err, eventstore.ErrWrongRevision) || attempt >= maxStreamAttempts {
			return ids, err
		}
	}
}

// Forgotten implements Store.
func (s *StreamStore) Forgotten(ctx context.Context, sub Subject) (time.Time, error) {
	_, at, _, err := s.subjectState(ctx, sub)
	return at, err
}

// Pepper implements Store.
func (s *StreamStore) Pepper(ctx context.Context, candidate []byte) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		read, err := s.log.ReadStream(ctx, pepperStream, 0, 1)
		if err != nil {
			return nil, err
		}
		if len(read) > 0 {
			var d wrappedData
			if err := json.Unmarshal(read[0].Data, &d); err != nil {
				return nil, fmt.Errorf("privacy: %s: %w", pepperStream, err)
			}
			return base64.StdEncoding.DecodeString(d.Wrapped)
		}
		e, err := newEvent(typePepperCreated, wrappedData{Wrapped: base64.StdEncoding.EncodeToString(candidate)})
		if err != nil {
			return nil, err
		}
		_, err = s.log.Append(ctx, pepperStream, eventstore.NoStream, e)
		if err == nil {
			return candidate, nil
		}
		if !errors.Is(err, eventstore.ErrWrongRevision) || attempt >= maxStreamAttempts {
			return nil, err
		}
	}
}

// DestroyKeys implements KeyDestroyer: each key's stream is tombstoned
// (one already tombstoned is skipped); a subject whose current key it was
// then has none.
func (s *StreamStore) DestroyKeys(ctx context.Context, ids []KeyID, _ time.Time) ([]KeyID, error) {
	var destroyed []KeyID
	for _, id := range ids {
		err := s.log.Tombstone(ctx, KeyStream(id))
		switch {
		case errors.Is(err, eventstore.ErrStreamDeleted):
		case err != nil:
			return destroyed, err
		default:
			destroyed = append(destroyed, id)
		}
	}
	return destroyed, nil
}

// ForgottenKeys returns the ids of every data key the log's
// subject.forgotten.v1 events name: the keys receiptd destroyed. After a
// key store is restored from a backup older than some forgets, passing
// them to Keyring.DestroyKeys forgets those subjects again (receiptd
// privacy reforget). It reads the whole log.
func ForgottenKeys(ctx context.Context, log interface {
	ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error)
}) ([]KeyID, error) {
	var ids []KeyID
	seen := map[KeyID]bool{}
	for after := eventstore.Start; ; {
		page, err := log.ReadAll(ctx, after, 1000)
		if err != nil {
			return ids, err
		}
		for _, e := range page {
			if e.Type != aggregate.TypeSubjectForgotten {
				continue
			}
			var d aggregate.SubjectForgotten
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return ids, fmt.Errorf("privacy: %s event at %s: %w", e.Type, e.Position, err)
			}
			for _, k := range d.KeyIDs {
				id, err := ParseKeyID(k)
				if err != nil {
					return ids, err
				}
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		if len(page) < 1000 {
			return ids, nil
		}
		after = page[len(page)-1].Position
	}
}

// Close implements Store; the log is the caller's to close.
func (s *StreamStore) Close() error { return nil }
