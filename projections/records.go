package projections

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

// The binary records (see binrec.go for the field encodings). Each starts
// with a format byte, so that a later version can read an older one.
const (
	receiptFormat = 1
	userFormat    = 1
	statsFormat   = 1
	ledgerFormat  = 1
)

// numStages is the number of receipt stages (aggregate.Stages).
const numStages = 7

// A receipt's record (bucketReceiptState) is its aggregate state: the
// positions of its first and last events, and per stage (in
// aggregate.Stages order) the number of distinct facts, when receiptd
// first received the stage (if it has facts), and the facts in body hash
// order, each with every field of aggregate.StageRecorded but the raw
// body (and the source and receipt id, which are the key's). Its view,
// its contribution to its user's totals and its statistics contribution
// are derived from it.

// Fact field flags.
const (
	factUser = 1 << iota
	factOccurred
	factMerchant
	factCurrency
	factAmount
	factAward
	factTransaction
	factSnapshot
	factFailure
	factFailureMessage
)

func (w *benc) fact(f *aggregate.StageRecorded) {
	var flags uint64
	set := func(bit uint64, ok bool) {
		if ok {
			flags |= bit
		}
	}
	set(factUser, f.UserID != "")
	set(factOccurred, f.OccurredAt != nil)
	set(factMerchant, f.Merchant != "")
	set(factCurrency, f.Currency != "")
	set(factAmount, f.Amount != nil)
	if a := f.Award; a != nil {
		flags |= factAward
		set(factTransaction, a.TransactionID != "")
		set(factSnapshot, a.Snapshot != nil)
	}
	if fl := f.Failure; fl != nil {
		flags |= factFailure
		set(factFailureMessage, fl.Message != "")
	}
	w.uvarint(flags)
	w.hash(f.BodySHA256)
	if flags&factUser != 0 {
		w.str(f.UserID)
	}
	if flags&factOccurred != 0 {
		w.time(*f.OccurredAt)
	}
	if flags&factMerchant != 0 {
		w.str(f.Merchant)
	}
	if flags&factCurrency != 0 {
		w.str(f.Currency)
	}
	if flags&factAmount != 0 {
		w.dec(*f.Amount)
	}
	if a := f.Award; a != nil {
		if flags&factTransaction != 0 {
			w.str(a.TransactionID)
		}
		w.dec(a.Points)
		w.dec(a.BonusPoints)
		w.dec(a.HealthPoints)
		w.dec(a.CO2e)
		w.varint(a.GreenProducts)
		if s := a.Snapshot; s != nil {
			w.snapshot(s)
		}
	}
	if fl := f.Failure; fl != nil {
		w.varint(fl.Code)
		w.str(fl.Name)
		if flags&factFailureMessage != 0 {
			w.str(fl.Message)
		}
	}
}

func (w *benc) snapshot(s *aggregate.Snapshot) {
	w.dec(s.AvailablePoints)
	w.dec(s.LifetimePoints)
	w.varint(s.NumTransactions)
}

func (r *bdec) snapshot() *aggregate.Snapshot {
	return &aggregate.Snapshot{AvailablePoints: r.dec(), LifetimePoints: r.dec(), NumTransactions: r.varint()}
}

func (r *bdec) fact(f *aggregate.StageRecorded) {
	flags := r.uvarint()
	f.BodySHA256 = r.hash()
	if flags&factUser != 0 {
		f.UserID = r.str()
	}
	if flags&factOccurred != 0 {
		f.OccurredAt = r.ptime()
	}
	if flags&factMerchant != 0 {
		f.Merchant = r.str()
	}
	if flags&factCurrency != 0 {
		f.Currency = r.str()
	}
	if flags&factAmount != 0 {
		f.Amount = r.pdec()
	}
	if flags&factAward != 0 {
		a := &aggregate.Award{}
		if flags&factTransaction != 0 {
			a.TransactionID = r.str()
		}
		a.Points, a.BonusPoints, a.HealthPoints, a.CO2e = r.dec(), r.dec(), r.dec(), r.dec()
		a.GreenProducts = r.varint()
		if flags&factSnapshot != 0 {
			a.Snapshot = r.snapshot()
		}
		f.Award = a
	}
	if flags&factFailure != 0 {
		fl := &aggregate.Failure{Code: r.varint(), Name: r.str()}
		if flags&factFailureMessage != 0 {
			fl.Message = r.str()
		}
		f.Failure = fl
	}
}

// receiptState is a receipt's stored state, decoded.
type receiptState struct {
	agg *aggregate.Receipt
	// first and last are the commit positions of the first and the latest
	// events that added a fact to it.
	first, last uint64
	// received holds when receiptd first received each stage: set for the
	// stages with facts (see receivedAt).
	received [numStages]time.Time
}

func appendReceiptState(b []byte, s *receiptState) []byte {
	w := benc{b: b, strs: make([]string, 0, 8)}
	w.byte(receiptFormat)
	w.uvarint(uint64(len(s.agg.Source())))
	w.uvarint(s.first)
	w.uvarint(s.last)
	for i := range numStages {
		fs := s.agg.StageFacts(i)
		w.uvarint(uint64(len(fs)))
		if len(fs) == 0 {
			continue
		}
		w.time(s.received[i])
		for j := range fs {
			w.fact(&fs[j])
		}
	}
	return w.b
}

// decodeReceiptState decodes the record of receipt source/receiptID.
func decodeReceiptState(raw []byte, source, receiptID string) (receiptState, error) {
	r := newBdec(raw)
	r.strs = make([]string, 0, 8)
	s := receiptState{agg: aggregate.NewReceipt(source, receiptID)}
	if r.byte() != receiptFormat || r.uvarint() != uint64(len(source)) {
		return s, fmt.Errorf("receipt %s/%s: %w: format", source, receiptID, errCorrupt)
	}
	s.first, s.last = r.uvarint(), r.uvarint()
	for i := range numStages {
		n := r.uvarint()
		if n == 0 {
			continue
		}
		if n > uint64(len(raw)) {
			r.fail()
			break
		}
		s.received[i] = r.time()
		for range n {
			f := aggregate.StageRecorded{Source: source, ReceiptID: receiptID, Stage: aggregate.Stages[i], RecordedAt: &s.received[i]}
			r.fact(&f)
			if r.err != nil {
				break
			}
			if added, err := s.agg.Add(f); err != nil || !added {
				r.fail()
			}
		}
	}
	if r.err == nil && !r.done() {
		r.fail()
	}
	if r.err != nil {
		return s, fmt.Errorf("receipt %s/%s: %w", source, receiptID, r.err)
	}
	return s, nil
}

// receiptKeyParts splits the key of a receipt's record into its source
// and receipt id (the record says where: a source may hold 0x00).
func receiptKeyParts(k, raw []byte) (source, receiptID string, err error) {
	r := newBdec(raw)
	if r.byte() != receiptFormat {
		return "", "", fmt.Errorf("receipt %q: %w: format", k, errCorrupt)
	}
	n := r.uvarint()
	if r.err != nil || n >= uint64(len(k)) || k[n] != 0 {
		return "", "", fmt.Errorf("receipt %q: %w: key", k, errCorrupt)
	}
	return string(k[:n]), string(k[n+1:]), nil
}

// A user's record (bucketUsers) is its userRecord.

const (
	userEnrolled = 1 << iota
	userEnrolledAt
	userReported
)

func appendUserRecord(b []byte, u *userRecord) []byte {
	w := benc{b: b}
	w.byte(userFormat)
	var flags uint64
	if u.Enrolled {
		flags |= userEnrolled
	}
	if u.EnrolledAt != nil {
		flags |= userEnrolledAt
	}
	if u.Reported != nil {
		flags |= userReported
	}
	w.uvarint(flags)
	t := &u.Totals
	w.varint(t.Completed)
	w.varint(t.Failed)
	w.varint(t.InProgress)
	w.dec(t.Points)
	w.dec(t.CO2e)
	w.varint(t.GreenProducts)
	w.dec(t.HealthPoints)
	w.varint(t.AmountAnomalies)
	w.dec(u.Credited)
	w.varint(u.CreditAnomalies)
	if u.Reported != nil {
		w.snapshot(u.Reported)
	}
	if u.EnrolledAt != nil {
		w.time(*u.EnrolledAt)
	}
	return w.b
}

func decodeUserRecord(raw []byte) (userRecord, error) {
	r := newBdec(raw)
	var u userRecord
	if r.byte() != userFormat {
		return u, fmt.Errorf("user: %w: format", errCorrupt)
	}
	flags := r.uvarint()
	u.Enrolled = flags&userEnrolled != 0
	t := &u.Totals
	t.Completed, t.Failed, t.InProgress = r.varint(), r.varint(), r.varint()
	t.Points, t.CO2e = r.dec(), r.dec()
	t.GreenProducts = r.varint()
	t.HealthPoints = r.dec()
	t.AmountAnomalies = r.varint()
	u.Credited = r.dec()
	u.CreditAnomalies = r.varint()
	if flags&userReported != 0 {
		u.Reported = r.snapshot()
	}
	if flags&userEnrolledAt != 0 {
		u.EnrolledAt = r.ptime()
	}
	if r.err == nil && !r.done() {
		r.fail()
	}
	if r.err != nil {
		return u, fmt.Errorf("user: %w", r.err)
	}
	return u, nil
}

// A statistics record (bucketStatsDays, bucketStatsTotals) is its
// statsAgg, maps in key order.

func appendStatsAgg(b []byte, s *statsAgg) []byte {
	w := benc{b: b}
	w.byte(statsFormat)
	w.varint(s.Completed)
	w.varint(s.Failed)
	w.varint(s.InProgress)
	w.dec(s.Points)
	w.dec(s.CO2e)
	w.varint(s.ProviderTimed)
	w.varint(s.NoDuration)
	w.varint(s.AmountAnomalies)
	w.varint(s.CreditAnomalies)
	w.uvarint(uint64(len(s.FailedByStage)))
	for _, k := range sortedKeys(s.FailedByStage) {
		w.str(k)
		w.varint(s.FailedByStage[k])
	}
	w.uvarint(uint64(len(s.Durations)))
	for _, k := range sortedKeys(s.Durations) {
		w.varint(int64(k))
		w.varint(s.Durations[k])
	}
	return w.b
}

func decodeStatsAgg(raw []byte) (statsAgg, error) {
	r := newBdec(raw)
	s := newStatsAgg()
	if r.byte() != statsFormat {
		return s, fmt.Errorf("statistics: %w: format", errCorrupt)
	}
	s.Completed, s.Failed, s.InProgress = r.varint(), r.varint(), r.varint()
	s.Points, s.CO2e = r.dec(), r.dec()
	s.ProviderTimed, s.NoDuration, s.AmountAnomalies, s.CreditAnomalies = r.varint(), r.varint(), r.varint(), r.varint()
	if n := r.uvarint(); n > 0 && n <= uint64(len(raw)) {
		s.FailedByStage = make(map[string]int64, n)
		for range n {
			k := r.str()
			s.FailedByStage[k] = r.varint()
		}
	} else if n > 0 {
		r.fail()
	}
	if n := r.uvarint(); n > 0 && n <= uint64(len(raw)) {
		s.Durations = make(map[int32]int64, n)
		for range n {
			k := r.varint()
			s.Durations[int32(k)] = r.varint()
		}
	} else if n > 0 {
		r.fail()
	}
	if r.err == nil && !r.done() {
		r.fail()
	}
	if r.err != nil {
		return s, fmt.Errorf("statistics: %w", r.err)
	}
	return s, nil
}

// A ledger entry (bucketLedger) is its LedgerEntry but for Position,
// which is the key's.

var ledgerKinds = []string{LedgerAward, LedgerAwardCorrected, LedgerAwardMoved, LedgerCredit}

const (
	ledgerCorrection = 1 << iota
	ledgerHasHash
)

func appendLedgerEntry(b []byte, e *LedgerEntry) []byte {
	w := benc{b: b}
	w.byte(ledgerFormat)
	kind := len(ledgerKinds)
	for i, k := range ledgerKinds {
		if k == e.Kind {
			kind = i
		}
	}
	w.uvarint(uint64(kind))
	if kind == len(ledgerKinds) {
		w.str(e.Kind)
	}
	w.time(e.RecordedAt)
	w.str(e.Source)
	w.str(e.ReceiptID)
	w.str(e.TransactionID)
	w.dec(e.Points)
	w.dec(e.Total)
	m := &e.Event
	var flags uint64
	if m.Correction {
		flags |= ledgerCorrection
	}
	if m.BodySHA256 != "" {
		flags |= ledgerHasHash
	}
	w.uvarint(flags)
	w.str(m.ProviderEventType)
	w.str(m.DeliveryID)
	w.time(m.ReceivedAt)
	w.str(m.Scheme)
	w.str(m.KeyID)
	if m.BodySHA256 != "" {
		w.hash(m.BodySHA256)
	}
	return w.b
}

// decodeLedgerEntry decodes the entry stored at a position with that
// commit position.
func decodeLedgerEntry(raw []byte, commit uint64) (LedgerEntry, error) {
	r := newBdec(raw)
	e := LedgerEntry{Position: commit}
	if r.byte() != ledgerFormat {
		return e, fmt.Errorf("ledger entry: %w: format", errCorrupt)
	}
	if kind := r.uvarint(); kind < uint64(len(ledgerKinds)) {
		e.Kind = ledgerKinds[kind]
	} else {
		e.Kind = r.str()
	}
	e.RecordedAt = r.time()
	e.Source, e.ReceiptID, e.TransactionID = r.str(), r.str(), r.str()
	e.Points, e.Total = r.dec(), r.dec()
	flags := r.uvarint()
	m := &e.Event
	m.Correction = flags&ledgerCorrection != 0
	m.ProviderEventType, m.DeliveryID = r.str(), r.str()
	m.ReceivedAt = r.time()
	m.Scheme, m.KeyID = r.str(), r.str()
	if flags&ledgerHasHash != 0 {
		m.BodySHA256 = r.hash()
	}
	if r.err == nil && !r.done() {
		r.fail()
	}
	if r.err != nil {
		return e, fmt.Errorf("ledger entry: %w", r.err)
	}
	return e, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }
