package projections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// DefaultAuditLimit and MaxAuditLimit bound how many items each list of an
// AuditReport holds (its total is always counted in full).
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10000
)

// AuditOptions choose what Audit reports.
type AuditOptions struct {
	// Source, if set, limits the findings (balances, receipts, quarantined
	// deliveries) to one source. The read models are compared whole.
	Source string
	// Limit bounds each list of findings: DefaultAuditLimit if zero, at
	// most MaxAuditLimit.
	Limit int
}

// Differences between a live read model and its rebuild.
const (
	DiffValue       = "value_differs"
	DiffOnlyLive    = "only_in_live"
	DiffOnlyRebuilt = "only_in_rebuild"
)

// KeyDifference is the first key at which a live read model and its rebuild
// differ.
type KeyDifference struct {
	Bucket string `json:"bucket"`
	// Key is the key as a person reads it: its parts joined by "/", a log
	// position as "@N" (see formatKey); KeyHex is the key's bytes.
	Key    string `json:"key"`
	KeyHex string `json:"key_hex"`
	// Kind is DiffValue, DiffOnlyLive or DiffOnlyRebuilt.
	Kind string `json:"kind"`
}

// ModelCheck is one read model compared with its rebuild.
type ModelCheck struct {
	Name    string `json:"name"`
	Matches bool   `json:"matches"`
	// Differences counts the keys that differ.
	Differences int64          `json:"differences"`
	First       *KeyDifference `json:"first,omitempty"`
	Live        ModelSummary   `json:"live"`
	Rebuilt     ModelSummary   `json:"rebuilt"`
}

// UnreconciledUser is a user whose provider-reported balance disagrees with
// the one derived from the log (Balance.Reconciled false).
type UnreconciledUser struct {
	Source string `json:"source"`
	UserID string `json:"user_id"`
	// ReportedLifetime and ReportedAvailable are the provider's newest
	// snapshot.
	ReportedLifetime  decimal.Decimal `json:"reported_lifetime"`
	ReportedAvailable decimal.Decimal `json:"reported_available"`
	// Awarded, Credited and Derived are as in Balance. The snapshot is
	// compared with Awarded: the provider does not know other sources'
	// credits.
	Awarded  decimal.Decimal `json:"awarded"`
	Credited decimal.Decimal `json:"credited"`
	Derived  decimal.Decimal `json:"derived"`
	// Difference is ReportedLifetime - Awarded.
	Difference decimal.Decimal `json:"difference"`
}

// AnomalousReceipt is a receipt whose view carries anomalies.
type AnomalousReceipt struct {
	Source    string                  `json:"source"`
	ReceiptID string                  `json:"receipt_id"`
	UserID    string                  `json:"user_id,omitempty"`
	Status    aggregate.ReceiptStatus `json:"status"`
	Anomalies []aggregate.Anomaly     `json:"anomalies"`
}

// QuarantinedDelivery is a verified delivery that could not be normalized.
type QuarantinedDelivery struct {
	Source            string `json:"source"`
	Position          uint64 `json:"position"`
	ProviderEventType string `json:"provider_event_type,omitempty"`
	Reason            string `json:"reason"`
	BodySHA256        string `json:"body_sha256"`
}

// SkippedEvent is an event of the log the read models could not apply.
type SkippedEvent struct {
	Position uint64 `json:"position"`
	Stream   string `json:"stream"`
	Type     string `json:"type"`
	EventID  string `json:"event_id"`
	Error    string `json:"error"`
}

// AuditReport is what Audit found. Each list holds at most the limit's
// items, in key order; its Total counts them all.
type AuditReport struct {
	// Position is the checkpoint at which the live read models and their
	// rebuild were compared.
	Position eventstore.Position `json:"position"`
	Source   string              `json:"source,omitempty"`
	Models   []ModelCheck        `json:"models"`

	UnreconciledTotal int64                 `json:"unreconciled_total"`
	Unreconciled      []UnreconciledUser    `json:"unreconciled"`
	AnomaliesTotal    int64                 `json:"anomalies_total"`
	Anomalies         []AnomalousReceipt    `json:"anomalies"`
	QuarantinedTotal  int64                 `json:"quarantined_total"`
	Quarantined       []QuarantinedDelivery `json:"quarantined"`
	SkippedTotal      int64                 `json:"skipped_total"`
	Skipped           []SkippedEvent        `json:"skipped"`

	Took time.Duration `json:"took"`
}

// Clean reports whether every live read model matches its rebuild.
func (r AuditReport) Clean() bool { return r.Differing() == 0 }

// Differing is how many read models differ from their rebuild.
func (r AuditReport) Differing() int {
	n := 0
	for _, m := range r.Models {
		if !m.Matches {
			n++
		}
	}
	return n
}

// Audit rebuilds the read models from the log into a scratch file,
// compares them with the live ones at one position, and reports the read
// models that differ (with the first differing key), the users whose
// reported balance disagrees with the derived one, the receipts with
// anomalies, the quarantined deliveries and the events that could not be
// applied. The findings come from the rebuild: what the log says.
//
// The live read models keep serving and the Runner keeps applying
// meanwhile; the comparison reads them in one read transaction, at the
// checkpoint it holds (long comparisons can delay the Runner while bbolt
// needs to grow the file). The scratch file is removed. One rebuild or
// audit runs at a time (ErrBusy).
func (d *DB) Audit(ctx context.Context, store eventstore.Store, opts AuditOptions) (AuditReport, error) {
	start := time.Now()
	fail := func(err error) (AuditReport, error) {
		return AuditReport{}, fmt.Errorf("projections: audit: %w", err)
	}
	limit := opts.Limit
	switch {
	case limit < 0:
		return fail(fmt.Errorf("limit %d: %w", limit, ErrBadQuery))
	case limit == 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	if !d.admin.TryLock() {
		return fail(ErrBusy)
	}
	defer d.admin.Unlock()

	scratch, err := d.openScratch("audit")
	if err != nil {
		return fail(err)
	}
	defer scratch.discard()
	if _, err := bulkReplay(ctx, store, scratch, d.Checkpoint()); err != nil {
		return fail(err)
	}
	if _, err := converge(ctx, store, scratch, d.Checkpoint); err != nil {
		return fail(err)
	}

	d.fileMu.RLock()
	defer d.fileMu.RUnlock()
	live, err := d.bdb.Begin(false)
	if err != nil {
		return fail(err)
	}
	defer live.Rollback()
	at := decodePosition(live.Bucket(bucketMeta).Get(keyCheckpoint))
	if _, err := catchUpTo(ctx, store, scratch, at); err != nil {
		return fail(err)
	}
	if got := scratch.Checkpoint(); got != at {
		return fail(fmt.Errorf("the log ends at %s, the read models are at %s: %w", got, at, ErrAheadOfLog))
	}
	if err := scratch.flushAll(); err != nil {
		return fail(err)
	}
	rebuilt, err := scratch.bdb.Begin(false)
	if err != nil {
		return fail(err)
	}
	defer rebuilt.Rollback()

	rep := AuditReport{Position: at, Source: opts.Source}
	for _, p := range catalog {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		c, err := compare(live, rebuilt, p)
		if err != nil {
			return fail(err)
		}
		rep.Models = append(rep.Models, c)
	}
	if err := findings(rebuilt, opts.Source, limit, &rep); err != nil {
		return fail(err)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// digester hashes a read model's buckets in order.
type digester struct {
	h    hash.Hash
	keys int64
}

func newDigester() *digester { return &digester{h: sha256.New()} }

func (g *digester) field(b []byte) {
	var n [binary.MaxVarintLen64]byte
	g.h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	g.h.Write(b)
}

func (g *digester) bucket(name []byte) { g.field([]byte("bucket")); g.field(name) }

func (g *digester) kv(k, v []byte) { g.keys++; g.field(k); g.field(v) }

func (g *digester) summary(name string) ModelSummary {
	return ModelSummary{Name: name, Keys: g.keys, Digest: hex.EncodeToString(g.h.Sum(nil))}
}

// summarize describes read model p in tx: a digest of its canonical form,
// hashing pre's (a bulk build's, at tx's checkpoint) instead of reading
// what it holds, if not nil.
func summarize(tx *bolt.Tx, p projection, pre *bulkDigests) (ModelSummary, error) {
	if pre != nil {
		if s, ok := pre.models[p.name]; ok {
			return s, nil
		}
	}
	g := newDigester()
	for _, name := range p.buckets {
		g.bucket(name)
		if pre != nil {
			if spools, ok := pre.spools[string(name)]; ok {
				for _, sp := range spools {
					if err := sp.hashInto(g); err != nil {
						return ModelSummary{}, err
					}
				}
				continue
			}
		}
		if err := forEachCanonical(tx, canonical(name), func(k, v []byte) error { g.kv(k, v); return nil }); err != nil {
			return ModelSummary{}, err
		}
	}
	return g.summary(p.name), nil
}

// compare walks p's canonical buckets in live and rebuilt side by side, in
// key order.
func compare(live, rebuilt *bolt.Tx, p projection) (ModelCheck, error) {
	gl, gr := newDigester(), newDigester()
	c := ModelCheck{Name: p.name}
	var bl, br []byte
	for _, name := range p.buckets {
		cb := canonical(name)
		gl.bucket(name)
		gr.bucket(name)
		var cl, cr *bolt.Cursor
		var kl, vl, kr, vr []byte
		if b := live.Bucket(cb.stored); b != nil {
			cl = b.Cursor()
			kl, vl = cl.First()
		}
		if b := rebuilt.Bucket(cb.stored); b != nil {
			cr = b.Cursor()
			kr, vr = cr.First()
		}
		differ := func(k []byte, kind string) {
			c.Differences++
			if c.First == nil {
				c.First = &KeyDifference{Bucket: string(name), Key: formatKey(name, k), KeyHex: hex.EncodeToString(k), Kind: kind}
			}
		}
		// canon returns the canonical value of a stored one, in buf.
		canon := func(buf *[]byte, k, v []byte) ([]byte, error) {
			cv, err := cb.canonValue(*buf, k, v)
			if err == nil && cb.value != nil {
				*buf = cv
			}
			return cv, err
		}
		for kl != nil || kr != nil {
			switch cmp := compareKeys(kl, kr); {
			case cmp < 0:
				differ(kl, DiffOnlyLive)
				v, err := canon(&bl, kl, vl)
				if err != nil {
					return c, err
				}
				gl.kv(kl, v)
				kl, vl = cl.Next()
			case cmp > 0:
				differ(kr, DiffOnlyRebuilt)
				v, err := canon(&br, kr, vr)
				if err != nil {
					return c, err
				}
				gr.kv(kr, v)
				kr, vr = cr.Next()
			default:
				// Equal records have equal canonical values: derive it once.
				l, err := canon(&bl, kl, vl)
				if err != nil {
					return c, err
				}
				r := l
				if !bytes.Equal(vl, vr) {
					if r, err = canon(&br, kr, vr); err != nil {
						return c, err
					}
					if !bytes.Equal(l, r) {
						differ(kl, DiffValue)
					}
				}
				gl.kv(kl, l)
				gr.kv(kr, r)
				kl, vl = cl.Next()
				kr, vr = cr.Next()
			}
		}
	}
	c.Live, c.Rebuilt = gl.summary(p.name), gr.summary(p.name)
	c.Matches = c.Differences == 0
	return c, nil
}

// compareKeys orders keys, a nil key (an exhausted cursor) after all.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

// keyLayouts describes each bucket's key, part by part: 's' a string
// ended by 0x00 (or by the key's end), 'q' eight bytes (a commit
// position), 'p' sixteen bytes (a position), 'r' the rest.
var keyLayouts = map[string]string{
	string(bucketReceiptFacts):   "sr",
	string(bucketReceipts):       "sr",
	string(bucketUsers):          "sr",
	string(bucketUserReceipts):   "ssqr",
	string(bucketLedger):         "ssp",
	string(bucketQuarantine):     "sq",
	string(bucketSkipped):        "q",
	string(bucketEntities):       "ssr",
	string(bucketEntityIndex):    "ssp",
	string(bucketEntityTimeline): "pp",
	string(bucketStatsReceipts):  "sr",
	string(bucketStatsDays):      "sr",
	string(bucketStatsTotals):    "r",
	string(bucketInProgress):     "str",
}

// formatKey renders a key of a bucket for a person: its parts joined by
// "/", positions as "@N". A key that does not fit its bucket's layout is
// rendered quoted.
func formatKey(bucket, k []byte) string {
	layout, ok := keyLayouts[string(bucket)]
	if !ok {
		return strconv.Quote(string(k))
	}
	var parts []string
	rest := k
	for i, part := range layout {
		switch part {
		case 's':
			s, after, found := bytes.Cut(rest, []byte{0})
			if !found && i != len(layout)-1 {
				return strconv.Quote(string(k))
			}
			parts, rest = append(parts, string(s)), after
		case 'q', 'p':
			n := 8
			if part == 'p' {
				n = 16
			}
			if len(rest) < n {
				return strconv.Quote(string(k))
			}
			parts, rest = append(parts, "@"+strconv.FormatUint(binary.BigEndian.Uint64(rest[:8]), 10)), rest[n:]
		case 't':
			if len(rest) < inProgressTimeLen {
				return strconv.Quote(string(k))
			}
			parts, rest = append(parts, decodeIndexTime(rest).Format(time.RFC3339Nano)), rest[inProgressTimeLen:]
		case 'r':
			parts, rest = append(parts, string(rest)), nil
		}
	}
	if len(rest) > 0 {
		return strconv.Quote(string(k))
	}
	out := strings.Join(parts, "/")
	if !isPrintable(out) {
		return strconv.Quote(string(k))
	}
	return out
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// findings fills the report's lists from the rebuilt read models.
func findings(tx *bolt.Tx, source string, limit int, rep *AuditReport) error {
	rep.Unreconciled, rep.Anomalies, rep.Quarantined, rep.Skipped = []UnreconciledUser{}, []AnomalousReceipt{}, []QuarantinedDelivery{}, []SkippedEvent{}
	inSource := func(k []byte) (string, string, bool) {
		src, id, _ := bytes.Cut(k, []byte{0})
		return string(src), string(id), source == "" || string(src) == source
	}
	err := tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		src, user, ok := inSource(k)
		if !ok {
			return nil
		}
		u, err := decodeUserRecord(v)
		if err != nil {
			return fmt.Errorf("user %q: %w", k, err)
		}
		b := u.balance(src, user)
		if b.Reconciled {
			return nil
		}
		rep.UnreconciledTotal++
		if len(rep.Unreconciled) < limit {
			rep.Unreconciled = append(rep.Unreconciled, UnreconciledUser{
				Source: src, UserID: user,
				ReportedLifetime: b.Reported.LifetimePoints, ReportedAvailable: b.Reported.AvailablePoints,
				Awarded: b.AwardedPoints, Credited: b.CreditedPoints, Derived: b.DerivedPoints,
				Difference: b.Reported.LifetimePoints.Sub(b.AwardedPoints),
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketReceiptState).ForEach(func(k, v []byte) error {
		if _, _, ok := inSource(k); !ok {
			return nil
		}
		st, err := receiptOf(k, v)
		if err != nil {
			return err
		}
		view := st.agg.View()
		if len(view.Anomalies) == 0 {
			return nil
		}
		rep.AnomaliesTotal++
		if len(rep.Anomalies) < limit {
			rep.Anomalies = append(rep.Anomalies, AnomalousReceipt{
				Source: view.Source, ReceiptID: view.ReceiptID, UserID: view.UserID,
				Status: view.Status, Anomalies: view.Anomalies,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketQuarantine).ForEach(func(k, v []byte) error {
		src, _, ok := inSource(k)
		if !ok {
			return nil
		}
		rep.QuarantinedTotal++
		if len(rep.Quarantined) >= limit {
			return nil
		}
		var q quarantineRecord
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("quarantined %q: %w", k, err)
		}
		rep.Quarantined = append(rep.Quarantined, QuarantinedDelivery{
			Source: src, Position: q.Position, ProviderEventType: q.ProviderEventType, Reason: q.Reason, BodySHA256: q.BodySHA256,
		})
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSkipped).ForEach(func(k, v []byte) error {
		var s map[string]string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("skipped %x: %w", k, err)
		}
		if source != "" {
			if _, src, _, err := aggregate.ParseStreamID(s["stream"]); err != nil || src != source {
				return nil
			}
		}
		rep.SkippedTotal++
		if len(rep.Skipped) < limit && len(k) == 8 {
			rep.Skipped = append(rep.Skipped, SkippedEvent{
				Position: binary.BigEndian.Uint64(k), Stream: s["stream"], Type: s["type"], EventID: s["id"], Error: s["error"],
			})
		}
		return nil
	})
}

// Summaries describes every read model as it is now, and the checkpoint it
// is at: two read models with equal summaries hold the same keys and
// values.
func (d *DB) Summaries(_ context.Context) ([]ModelSummary, eventstore.Position, error) {
	out, at, err := d.summaries(nil)
	if err != nil {
		return nil, eventstore.Start, fmt.Errorf("projections: summaries: %w", err)
	}
	return out, at, nil
}

// summaries digests every read model of the catalog, one model per core at
// a time, each in a read transaction of its own (a bbolt transaction is
// not for concurrent use, and one goroutine holding two can deadlock with
// a writer remapping the file). The transactions must all see one state:
// if a commit came between them (their ids differ), the digests are taken
// again one after another in one transaction.
//
// pre, if not nil, is what the bulk build of the file digested: used if
// the file is still at its checkpoint (bulkdigest.go).
func (d *DB) summaries(pre *bulkDigests) ([]ModelSummary, eventstore.Position, error) {
	d.fileMu.RLock()
	defer d.fileMu.RUnlock()
	out, at, err := d.summariesLocked(pre)
	if errors.Is(err, errStaleDigests) {
		return d.summariesLocked(nil)
	}
	return out, at, err
}

// summariesLocked is summaries with d.fileMu held.
func (d *DB) summariesLocked(pre *bulkDigests) ([]ModelSummary, eventstore.Position, error) {
	d.readingAll.Add(1) // the trimmer keeps up with a read of every page
	defer d.readingAll.Add(-1)
	type part struct {
		s    ModelSummary
		txid int
		at   eventstore.Position
		err  error
	}
	parts := make([]part, len(catalog))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range catalog {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			parts[i].err = d.bdb.View(func(tx *bolt.Tx) error {
				parts[i].txid = tx.ID()
				parts[i].at = decodePosition(tx.Bucket(bucketMeta).Get(keyCheckpoint))
				if pre != nil && parts[i].at != pre.at {
					return errStaleDigests
				}
				var err error
				parts[i].s, err = summarize(tx, p, pre)
				return err
			})
		})
	}
	wg.Wait()
	out := make([]ModelSummary, 0, len(catalog))
	same := true
	for _, pt := range parts {
		if pt.err != nil {
			return nil, eventstore.Start, pt.err
		}
		same = same && pt.txid == parts[0].txid
		out = append(out, pt.s)
	}
	if same {
		return out, parts[0].at, nil
	}
	out = out[:0]
	var at eventstore.Position
	err := d.bdb.View(func(tx *bolt.Tx) error {
		at = decodePosition(tx.Bucket(bucketMeta).Get(keyCheckpoint))
		for _, p := range catalog {
			s, err := summarize(tx, p, nil)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	return out, at, err
}

// Dump writes every key and value of every bucket of the canonical form
// (see canon.go), meta included, in order of bucket name and key, one per
// line: bucket name, key and value, each quoted. Two read models with one
// dump are byte-identical as read models (their files' page layouts may
// differ).
func (d *DB) Dump(w io.Writer) error {
	bw := bufio.NewWriter(w)
	buckets := []canonBucket{{name: bucketMeta, stored: bucketMeta}}
	buckets = append(buckets, canonBuckets...)
	slices.SortFunc(buckets, func(a, b canonBucket) int { return bytes.Compare(a.name, b.name) })
	err := d.view(func(tx *bolt.Tx) error {
		for _, c := range buckets {
			if err := forEachCanonical(tx, c, func(k, v []byte) error {
				_, err := fmt.Fprintf(bw, "%q %q %q\n", c.name, k, v)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("projections: dump: %w", err)
	}
	return nil
}
