package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	bolt "go.etcd.io/bbolt"
)

// Stuck receipts (issue 16). bucketInProgress indexes every receipt in
// progress by its source and the time receiptd first recorded one of its
// deliveries (ReceiptView.FirstRecorded): a receipt enters it when it is
// first seen in progress, moves if an earlier-recorded delivery turns up,
// and leaves it when it turns terminal. It is a function of each
// receipt's final record (inProgressKey), so a rebuild writes the same
// entries whatever the order it applies the receipts in.
//
// Whether a receipt is overdue depends on the time of the read: the
// index holds no clock reading. A reader passes "now" from its clock, and
// the receipts first recorded more than the source's window before it
// (aggregate.ReceiptView.Overdue) are the index's entries before
// now − window: the sweep counts them (OverdueCounts) and the list reads
// them (InProgress with before = now − window).

// inProgressTimeLen is the length of a time in an index key.
const inProgressTimeLen = 12

// appendIndexTime appends t in an order-preserving form: the Unix seconds
// with the sign bit flipped, big-endian, then the nanoseconds.
func appendIndexTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func decodeIndexTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

// inProgressPrefix is the prefix of a source's entries.
func inProgressPrefix(source string) []byte {
	return append([]byte(source), 0)
}

// inProgressKey returns the key of a receipt's entry in bucketInProgress
// (source 0x00 time(first recorded) receiptID), or nil if the view is not
// in progress (or has no recorded time: a record of a version before
// recorded times, which a rebuild replaces). The bulk build calls it with
// each receipt's final view; the live applier through indexInProgress.
func inProgressKey(source, receiptID string, v *aggregate.ReceiptView) []byte {
	first, ok := inProgressAt(v)
	if !ok {
		return nil
	}
	k := make([]byte, 0, len(source)+1+inProgressTimeLen+len(receiptID))
	k = append(append(k, source...), 0)
	k = appendIndexTime(k, first)
	return append(k, receiptID...)
}

// inProgressAt returns the time a view's entry in bucketInProgress is
// keyed by, and false if it has none (see inProgressKey).
func inProgressAt(v *aggregate.ReceiptView) (time.Time, bool) {
	if v == nil || v.Status != aggregate.StatusInProgress {
		return time.Time{}, false
	}
	return v.FirstRecorded()
}

// indexInProgress moves a receipt's entry in bucketInProgress from where
// its old view (nil for a new receipt) put it to where its new view puts
// it.
func (a *applier) indexInProgress(source, receiptID string, old, now *aggregate.ReceiptView) error {
	if a.bulk != nil {
		return nil // a bulk build: its workers index each receipt's final view (inProgressKey)
	}
	// Most events leave the entry where it is: compare before building keys.
	ot, oin := inProgressAt(old)
	nt, nin := inProgressAt(now)
	if oin == nin && (!oin || ot.Equal(nt)) {
		return nil
	}
	ok, nk := inProgressKey(source, receiptID, old), inProgressKey(source, receiptID, now)
	b := a.tx.Bucket(bucketInProgress)
	if ok != nil {
		if err := b.Delete(ok); err != nil {
			return err
		}
	}
	if nk != nil {
		return b.Put(nk, nil)
	}
	return nil
}

// InProgress lists a source's receipts in progress, the longest waiting
// first (by when receiptd first recorded one of their deliveries), a page
// at a time. With before not zero, it lists only the receipts first
// recorded before it: with before = now − the source's retry window, the
// overdue ones. pageToken is "" for the first page or a token this method
// returned for the same source. The views are as stored: the caller adds
// the overdue anomaly with its clock (aggregate.ReceiptView.MarkOverdue).
func (d *DB) InProgress(_ context.Context, source string, before time.Time, pageSize int, pageToken string) ([]aggregate.ReceiptView, string, error) {
	prefix := inProgressPrefix(source)
	cursor, err := decodePageToken(pageSize, pageToken, prefix)
	if err == nil && cursor != nil && len(cursor) < len(prefix)+inProgressTimeLen {
		err = ErrBadPageToken
	}
	if err != nil {
		return nil, "", fmt.Errorf("projections: list receipts in progress of %s: %w", source, err)
	}
	if !validKeyPart(source) {
		return nil, "", nil
	}
	var end []byte
	if !before.IsZero() {
		end = appendIndexTime(bytes.Clone(prefix), before)
	}
	var views []aggregate.ReceiptView
	var next string
	err = d.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInProgress).Cursor()
		var k []byte
		if cursor == nil {
			k, _ = c.Seek(prefix)
		} else if k, _ = c.Seek(cursor); bytes.Equal(k, cursor) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) < len(prefix)+inProgressTimeLen {
				return fmt.Errorf("index key %q: %w", k, errCorrupt)
			}
			if end != nil && bytes.Compare(k[:len(end)], end) >= 0 {
				return nil
			}
			if len(views) == pageSize {
				next = base64.RawURLEncoding.EncodeToString(inProgressLastKey(source, &views[len(views)-1]))
				return nil
			}
			id := string(k[len(prefix)+inProgressTimeLen:])
			v, err := receiptView(tx, source, id)
			if err != nil {
				return fmt.Errorf("index names receipt %s: %w", id, err)
			}
			views = append(views, v)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("projections: list receipts in progress of %s: %w", source, err)
	}
	return views, next, nil
}

// inProgressLastKey is the index key of a listed view (the page token of
// the page after it).
func inProgressLastKey(source string, v *aggregate.ReceiptView) []byte {
	return inProgressKey(source, v.ReceiptID, v)
}

// OverdueCounts counts, for every source with receipts in progress, those
// first recorded more than window(source) before now (a window of zero or
// less counts none). Sources with none overdue are reported with 0.
func (d *DB) OverdueCounts(_ context.Context, now time.Time, window func(source string) time.Duration) (map[string]int64, error) {
	out := map[string]int64{}
	err := d.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInProgress).Cursor()
		k, _ := c.First()
		for k != nil {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("index key %q: %w", k, errCorrupt)
			}
			source := string(k[:i])
			out[source] = countOverdue(tx, source, now, window(source))
			k, _ = c.Seek(prefixEnd(inProgressPrefix(source)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projections: count overdue receipts: %w", err)
	}
	return out, nil
}

// countOverdue counts the source's receipts in progress first recorded
// more than window before now.
func countOverdue(tx *bolt.Tx, source string, now time.Time, window time.Duration) int64 {
	if window <= 0 || !validKeyPart(source) {
		return 0
	}
	prefix := inProgressPrefix(source)
	end := appendIndexTime(bytes.Clone(prefix), now.Add(-window))
	var n int64
	c := tx.Bucket(bucketInProgress).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		n++
	}
	return n
}
