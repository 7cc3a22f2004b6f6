package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// Kinds of LedgerEntry: what changed a user's derived points.
const (
	// LedgerAward: a receipt of the user was awarded (it now counts).
	LedgerAward = "award"
	// LedgerAwardCorrected: the award a receipt of the user counts with
	// changed: a correction of AWARDED chose another fact.
	LedgerAwardCorrected = "award_corrected"
	// LedgerAwardMoved: an awarded receipt stopped counting for the user
	// because its events came to name another user (that user's ledger
	// has the LedgerAward).
	LedgerAwardMoved = "award_moved"
	// LedgerCredit: points credited outside a receipt
	// (aggregate.TypeUserPointsCredited).
	LedgerCredit = "credit"
)

// EventMeta is what the log says about how an event arrived: the provider's
// event type, the delivery, when receiptd received it and how it verified
// it (aggregate.Metadata, without the dedupe keys).
type EventMeta struct {
	ProviderEventType string    `json:"provider_event_type,omitempty"`
	DeliveryID        string    `json:"delivery_id,omitempty"`
	ReceivedAt        time.Time `json:"received_at"`
	Scheme            string    `json:"scheme,omitempty"`
	KeyID             string    `json:"key_id,omitempty"`
	BodySHA256        string    `json:"body_sha256,omitempty"`
	// Correction is set on an event that restated a fact with another
	// body (see aggregate.Metadata.Correction).
	Correction bool `json:"correction,omitempty"`
}

// eventMeta decodes an event's metadata, tolerating what it cannot decode
// (the entry then shows less): a ledger must not stop at an odd envelope.
func eventMeta(e eventstore.RecordedEvent) EventMeta {
	m, err := eventcodec.Metadata(e.Event)
	return metaOf(m, err)
}

// metaOf is eventMeta of decoded metadata (empty when it could not be
// decoded).
func metaOf(m aggregate.Metadata, err error) EventMeta {
	if err != nil {
		return EventMeta{}
	}
	return EventMeta{
		ProviderEventType: m.ProviderEventType, DeliveryID: m.DeliveryID, ReceivedAt: m.ReceivedAt,
		Scheme: m.Scheme, KeyID: m.KeyID, BodySHA256: m.BodySHA256, Correction: m.Correction,
	}
}

// LedgerEntry is one change to a user's derived points (Balance.DerivedPoints)
// and the event that made it. A user's entries, oldest first, add up to
// the derived points: Total is the exact running sum after the entry.
type LedgerEntry struct {
	// Position is the commit position of the event; RecordedAt when the
	// store recorded it.
	Position   uint64    `json:"position"`
	RecordedAt time.Time `json:"recorded_at"`
	// Kind is one of LedgerAward, LedgerAwardCorrected, LedgerAwardMoved,
	// LedgerCredit.
	Kind string `json:"kind"`
	// Source is the source of the event: the receipt's, or the crediting
	// source of a credit (which may differ from the balance's namespace).
	Source string `json:"source"`
	// ReceiptID is the awarded receipt (award kinds).
	ReceiptID string `json:"receipt_id,omitempty"`
	// TransactionID is the provider's transaction of the award or credit.
	TransactionID string `json:"transaction_id,omitempty"`
	// Points is the change, exact and signed: negative for LedgerAwardMoved
	// and for a correction that lowered an award.
	Points decimal.Decimal `json:"points"`
	// Total is the user's derived points after the change.
	Total decimal.Decimal `json:"total"`
	// Event is how the event arrived.
	Event EventMeta `json:"event"`
}

// ledgerKey is the key of bucketLedger: source 0x00 user 0x00 position.
func ledgerKey(source, userID string, p eventstore.Position) []byte {
	return append(ledgerPrefix(source, userID), encodePosition(p)...)
}

// ledgerKeyCommit returns the commit position of a ledger key's event
// (0 for a key too short to hold one).
func ledgerKeyCommit(k []byte) uint64 {
	if len(k) < positionLen {
		return 0
	}
	return decodePosition(k[len(k)-positionLen:]).Commit
}

func ledgerPrefix(source, userID string) []byte {
	return append(key(source, userID), 0)
}

// awardFor returns what a receipt view contributes to user's derived
// points: its points if it is completed and belongs to user.
func awardFor(v *aggregate.ReceiptView, user string) (decimal.Decimal, bool) {
	if v == nil || v.UserID != user || v.Status != aggregate.StatusCompleted {
		return decimal.Decimal{}, false
	}
	return v.Points, true
}

// ledgerReceipt writes a ledger entry for each user whose derived points
// the event changed through the receipt: prev is the receipt's view before
// the event (nil for a new receipt), now after. Called after the users'
// records were updated.
func (a *applier) ledgerReceipt(e eventstore.RecordedEvent, d *decodedEvent, prev, now *aggregate.ReceiptView) error {
	users := []string{now.UserID}
	if prev != nil && prev.UserID != now.UserID {
		users = append(users, prev.UserID)
	}
	var meta *EventMeta
	for _, user := range users {
		if user == "" {
			continue
		}
		before, had := awardFor(prev, user)
		after, has := awardFor(now, user)
		var kind string
		switch {
		case !had && has:
			kind = LedgerAward
		case had && !has:
			kind = LedgerAwardMoved
		case had && has && !before.Equal(after):
			kind = LedgerAwardCorrected
		default:
			continue
		}
		if meta == nil {
			m := metaOf(d.meta, d.metaErr)
			meta = &m
		}
		delta := decimal.Zero
		if has {
			delta = delta.Add(after)
		}
		if had {
			delta = delta.Sub(before)
		}
		tx := now.TransactionID
		if !has && prev != nil {
			tx = prev.TransactionID
		}
		if err := a.ledgerPut(user, LedgerEntry{
			Position: e.Position.Commit, RecordedAt: e.RecordedAt, Kind: kind, Source: now.Source,
			ReceiptID: now.ReceiptID, TransactionID: tx, Points: delta, Event: *meta,
		}, now.Source, e.Position); err != nil {
			return err
		}
	}
	return nil
}

// ledgerCredit writes the ledger entry of a credit to user userID of
// namespace ns.
func (a *applier) ledgerCredit(e eventstore.RecordedEvent, d *decodedEvent, ns string, c aggregate.PointsCredited) error {
	return a.ledgerPut(c.UserID, LedgerEntry{
		Position: e.Position.Commit, RecordedAt: e.RecordedAt, Kind: LedgerCredit, Source: c.Source,
		TransactionID: c.TransactionID, Points: c.Points, Event: metaOf(d.meta, d.metaErr),
	}, ns, e.Position)
}

// ledgerPut completes entry with the user's running total and stores it.
func (a *applier) ledgerPut(userID string, entry LedgerEntry, ns string, p eventstore.Position) error {
	u, err := a.user(ns, userID)
	if err != nil {
		return fmt.Errorf("ledger of user %s: %w", userID, err)
	}
	if !u.existed && !u.dirty {
		return fmt.Errorf("ledger of user %s: %w", userID, ErrNotFound)
	}
	entry.Total = u.rec.Totals.Points.Add(u.rec.Credited)
	if a.bulk != nil {
		a.bulk.addLedger(ledgerKey(ns, userID, p), &entry)
		return nil
	}
	return a.tx.Bucket(bucketLedger).Put(ledgerKey(ns, userID, p), appendLedgerEntry(nil, &entry))
}

// Ledger lists the changes to a user's derived points, oldest first, a page
// at a time; the Total of the last entry of the last page is the user's
// derived points. pageToken is "" for the first page or a token this method
// returned for the same user. ErrNotFound if no event named the user.
func (d *DB) Ledger(_ context.Context, source, userID string, pageSize int, pageToken string) ([]LedgerEntry, string, error) {
	prefix := ledgerPrefix(source, userID)
	cursor, err := decodePageToken(pageSize, pageToken, prefix)
	if err == nil && cursor != nil && len(cursor) != len(prefix)+positionLen {
		err = ErrBadPageToken
	}
	if err != nil {
		return nil, "", fmt.Errorf("projections: ledger of %s/%s: %w", source, userID, err)
	}
	var out []LedgerEntry
	var next string
	err = d.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get(key(source, userID)) == nil {
			return ErrNotFound
		}
		var err error
		next, err = pageForward(tx.Bucket(bucketLedger), prefix, cursor, pageSize, func(k, v []byte) error {
			entry, err := decodeLedgerEntry(v, ledgerKeyCommit(k))
			if err != nil {
				return fmt.Errorf("ledger entry %x: %w", k, err)
			}
			out = append(out, entry)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("projections: ledger of %s/%s: %w", source, userID, err)
	}
	return out, next, nil
}

// pageForward visits up to size keys of b under prefix, smallest first,
// starting just after cursor (a key a previous page ended on) or at the
// first key under prefix when cursor is nil. It returns the token of the
// next page: "" when no key under prefix is left.
func pageForward(b *bolt.Bucket, prefix, cursor []byte, size int, visit func(k, v []byte) error) (string, error) {
	c := b.Cursor()
	var k, v []byte
	if cursor == nil {
		k, v = c.Seek(prefix)
	} else {
		k, v = c.Seek(cursor)
		if k != nil && bytes.Equal(k, cursor) {
			k, v = c.Next()
		}
	}
	var last []byte
	for n := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n == size {
			return base64.RawURLEncoding.EncodeToString(last), nil
		}
		if err := visit(k, v); err != nil {
			return "", err
		}
		last = append(last[:0], k...)
		n++
	}
	return "", nil
}
