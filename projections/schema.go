package projections

// Every bucket of the read-model file, in one place. Keys are
// source + 0x00 + id unless said otherwise.
var (
	// bucketMeta holds keyCheckpoint (the position of the last applied
	// event, 16 bytes: commit, prepare, big-endian) and keySchema.
	bucketMeta = []byte("meta")
	// bucketReceiptFacts: the receipt aggregate's distinct facts (JSON).
	bucketReceiptFacts = []byte("receipt_facts")
	// bucketReceipts: the resolved receipt view and its index data (JSON receiptRecord).
	bucketReceipts = []byte("receipts")
	// bucketUsers: a user's balance state (JSON userRecord).
	bucketUsers = []byte("users")
	// bucketUserReceipts indexes a user's receipts, newest first when read
	// backwards: source 0x00 user 0x00 be64(first position) receiptID → "".
	bucketUserReceipts = []byte("user_receipts")
	// bucketQuarantine lists quarantined deliveries: source 0x00 be64(position) → JSON.
	bucketQuarantine = []byte("quarantine")
	// bucketSkipped records events that could not be applied: be64(position) → JSON.
	bucketSkipped = []byte("skipped")

	allBuckets = [][]byte{bucketMeta, bucketReceiptFacts, bucketReceipts, bucketUsers, bucketUserReceipts, bucketQuarantine, bucketSkipped}

	keyCheckpoint = []byte("checkpoint")
	keySchema     = []byte("schema")
)

// schemaVersion changes when the read models' encoding changes; a file of
// another version is rebuilt from the log.
const schemaVersion = "1"
