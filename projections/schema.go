package projections

// Every bucket of the read-model file, in one place. Keys are
// source + 0x00 + id unless said otherwise. Positions in keys are 16 bytes:
// commit then prepare, big-endian (encodePosition).
var (
	// bucketMeta holds keyCheckpoint (the position of the last applied
	// event) and keySchema.
	bucketMeta = []byte("meta")
	// bucketReceiptFacts: the receipt aggregate's distinct facts (JSON).
	bucketReceiptFacts = []byte("receipt_facts")
	// bucketReceipts: the resolved receipt view and its index data (JSON receiptRecord).
	bucketReceipts = []byte("receipts")
	// bucketUsers: a user's balance state (JSON userRecord). The source is
	// the user id namespace: for a credit, its BalanceSource.
	bucketUsers = []byte("users")
	// bucketUserReceipts indexes a user's receipts, newest first when read
	// backwards: source 0x00 user 0x00 be64(first position) receiptID → "".
	bucketUserReceipts = []byte("user_receipts")
	// bucketQuarantine lists quarantined deliveries: source 0x00 be64(position) → JSON.
	bucketQuarantine = []byte("quarantine")
	// bucketSkipped records events that could not be applied: be64(position) → JSON.
	bucketSkipped = []byte("skipped")
	// bucketEntities: an entity's view without its timeline, plus what
	// choosing its status needs (JSON entityRecord). Key: source 0x00 kind
	// 0x00 id (neither source nor kind contains 0x00).
	bucketEntities = []byte("entities")
	// bucketEntityIndex lists the entities of a source and kind, newest
	// first when read backwards: source 0x00 kind 0x00 position(first
	// event) → id. An entity's first position is unique to it.
	bucketEntityIndex = []byte("entity_index")
	// bucketEntityTimeline holds the latest MaxTimeline events of each
	// entity: position(entity's first event) position(event) → JSON
	// EntityEvent. Both parts are fixed-length, so an entity's entries are
	// one prefix, in log order.
	bucketEntityTimeline = []byte("entity_timeline")

	allBuckets = [][]byte{
		bucketMeta, bucketReceiptFacts, bucketReceipts, bucketUsers, bucketUserReceipts,
		bucketQuarantine, bucketSkipped, bucketEntities, bucketEntityIndex, bucketEntityTimeline,
	}

	keyCheckpoint = []byte("checkpoint")
	keySchema     = []byte("schema")
)

// schemaVersion changes when the read models' encoding changes, or when
// they come to depend on events an earlier version ignored (the checkpoint
// of an older file is past those events, so only a rebuild applies them).
// Open discards the read models of a file of another version, and the
// runner rebuilds them from the log.
//
// History: "1" receipts and balances; "2" credits in balances
// (userRecord.Credited) and the entity read models.
const schemaVersion = "2"
