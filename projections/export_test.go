package projections

import bolt "go.etcd.io/bbolt"

// SetLastPosition rewrites the last position in the stored record of a
// receipt, as a corruption of the receipts read model would: for tests of
// audits. It reports whether the receipt has a record.
func SetLastPosition(tx *bolt.Tx, source, receiptID string, pos uint64) (bool, error) {
	b := tx.Bucket(bucketReceiptState)
	raw := b.Get(key(source, receiptID))
	if raw == nil {
		return false, nil
	}
	st, err := decodeReceiptState(raw, source, receiptID)
	if err != nil {
		return false, err
	}
	st.last = pos
	return true, b.Put(key(source, receiptID), appendReceiptState(nil, &st))
}
