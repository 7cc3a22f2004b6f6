package projections

// Every bucket of the read-model file, in one place. Keys are
// source + 0x00 + id unless said otherwise. Positions in keys are 16 bytes:
// commit then prepare, big-endian (encodePosition). Records are binary
// (records.go) unless said otherwise; audits, digests and Dump see them
// in their canonical form (canon.go): the buckets and JSON values of
// schema 4, which is what ModelSummary digests.
var (
	// bucketMeta holds keyCheckpoint (the position of the last applied
	// event) and keySchema. It belongs to no projection: a rebuild writes
	// its own.
	bucketMeta = []byte("meta")
	// bucketReceiptState: a receipt's aggregate state (receiptState), from
	// which its view, its user's totals contribution and its statistics
	// contribution are derived (schema 5). Canonically it is three
	// buckets: bucketReceiptFacts, bucketReceipts and bucketStatsReceipts.
	bucketReceiptState = []byte("receipt_state")
	// bucketUsers: a user's balance state (userRecord). The source is
	// the user id namespace: for a credit, its BalanceSource.
	bucketUsers = []byte("users")
	// bucketUserReceipts indexes a user's receipts, newest first when read
	// backwards: source 0x00 user 0x00 be64(first position) receiptID → "".
	bucketUserReceipts = []byte("user_receipts")
	// bucketLedger lists every change to a user's derived points, oldest
	// first: source 0x00 user 0x00 position(event) → LedgerEntry
	// (schema 3). One event changes a user's points at most once.
	bucketLedger = []byte("ledger")
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
	// bucketStatsDays: the pipeline statistics of the receipts that became
	// terminal on a day (UTC): source 0x00 "2006-01-02" → statsAgg.
	bucketStatsDays = []byte("stats_days")
	// bucketStatsTotals: the pipeline statistics of every receipt of a
	// source, in progress included: source → statsAgg.
	bucketStatsTotals = []byte("stats_totals")
	// bucketInProgress indexes the receipts in progress, longest waiting
	// first: source 0x00 time(first recorded delivery; 12 bytes, see
	// appendIndexTime) receiptID → "" (schema 6; overdue.go).
	bucketInProgress = []byte("receipts_in_progress")

	allBuckets = [][]byte{
		bucketMeta, bucketReceiptState, bucketUsers, bucketUserReceipts, bucketLedger,
		bucketQuarantine, bucketSkipped, bucketEntities, bucketEntityIndex, bucketEntityTimeline,
		bucketStatsDays, bucketStatsTotals, bucketFeed, bucketInProgress,
	}

	keyCheckpoint = []byte("checkpoint")
	keySchema     = []byte("schema")
)

// The canonical buckets that no stored bucket holds as such (canon.go).
var (
	// bucketReceiptFacts: the receipt aggregate's distinct facts (JSON).
	bucketReceiptFacts = []byte("receipt_facts")
	// bucketReceipts: the resolved receipt view and its index data (JSON
	// receiptRecord).
	bucketReceipts = []byte("receipts")
	// bucketStatsReceipts: what each receipt contributes to the pipeline
	// statistics and when receiptd first received each of its stages
	// (JSON statsReceipt; schema 3).
	bucketStatsReceipts = []byte("stats_receipts")
)

// projection is one named read model: the canonical buckets it owns (its
// digest covers them, in this order) and the stored buckets they are
// derived from. Every canonical bucket belongs to exactly one projection;
// bucketReceiptState feeds two (receipts and stats), so rebuilding either
// rewrites it. They are all written by one pass over the log (an event
// may change several), so a projection is rebuilt by replaying the whole
// log and keeping its stored buckets.
type projection struct {
	name    string
	buckets [][]byte
	stored  [][]byte
}

// catalog lists the projections, in the order reports show them.
var catalog = []projection{
	{"receipts", [][]byte{bucketReceiptFacts, bucketReceipts, bucketUserReceipts, bucketInProgress}, [][]byte{bucketReceiptState, bucketUserReceipts, bucketInProgress}},
	{"balances", [][]byte{bucketUsers}, [][]byte{bucketUsers}},
	{"ledger", [][]byte{bucketLedger}, [][]byte{bucketLedger}},
	{"entities", [][]byte{bucketEntities, bucketEntityIndex, bucketEntityTimeline}, [][]byte{bucketEntities, bucketEntityIndex, bucketEntityTimeline}},
	{"quarantine", [][]byte{bucketQuarantine, bucketSkipped}, [][]byte{bucketQuarantine, bucketSkipped}},
	{"stats", [][]byte{bucketStatsReceipts, bucketStatsDays, bucketStatsTotals}, [][]byte{bucketReceiptState, bucketStatsDays, bucketStatsTotals}},
	{"feed", [][]byte{bucketFeed}, [][]byte{bucketFeed}},
}

// Names returns the names of the projections (the read models a rebuild
// or an audit names), in report order.
func Names() []string {
	out := make([]string, len(catalog))
	for i, p := range catalog {
		out[i] = p.name
	}
	return out
}

// lookup returns the projection called name.
func lookup(name string) (projection, bool) {
	for _, p := range catalog {
		if p.name == name {
			return p, true
		}
	}
	return projection{}, false
}

// schemaVersion changes when the read models' encoding changes, or when
// they come to depend on events an earlier version ignored (the checkpoint
// of an older file is past those events, so only a rebuild applies them).
// Open discards the read models of a file of another version, and the
// runner rebuilds them from the log.
//
// History: "1" receipts and balances; "2" credits in balances
// (userRecord.Credited) and the entity read models; "3" the ledger and the
// pipeline statistics; "4" amounts outside the sanity bounds flagged on
// receipts, balances and statistics; "5" binary records, one per receipt
// (their canonical form, and so the digests, are schema 4's); "6" the feed
// (bucketFeed, feedapply.go; the other read models as in 5); "7" the
// index of receipts in progress (bucketInProgress, overdue.go) and each
// stage's recorded_at in the canonical receipt view; "8" the feed's events
// stored compressed (feed's formatS2; their canonical form, and so the
// digests, are schema 7's).
const schemaVersion = "8"
