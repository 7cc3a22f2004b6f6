package projections

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

// Hand-written JSON encoders of the records an event rewrites (a receipt's
// facts, view and statistics record, users' balance states, statistics
// aggregates). They write exactly the bytes encoding/json writes for the
// same values — the stored bytes are what audits digest, so a log's
// digests do not depend on which version built its read models
// (TestRecordEncodersMatchEncodingJSON) — at a fraction of the cost of
// reflection. A value encoding/json would refuse (a time outside years
// 0–9999) makes enc.bad true; the caller then uses encoding/json, which
// reports the error.

type enc struct {
	b   []byte
	bad bool
}

const hexDigits = "0123456789abcdef"

// str appends s as encoding/json does, HTML-escaping included.
func (e *enc) str(s string) {
	dst := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	e.b = append(dst, '"')
}

// key appends a member name and its colon, after a comma unless first.
func (e *enc) key(first bool, name string) {
	if !first {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) int(n int64) { e.b = strconv.AppendInt(e.b, n, 10) }

func (e *enc) bool(v bool) { e.b = strconv.AppendBool(e.b, v) }

// dec appends a decimal as its MarshalJSON does: the quoted String().
func (e *enc) dec(d decimal.Decimal) {
	e.b = append(e.b, '"')
	e.b = appendDecimal(e.b, d)
	e.b = append(e.b, '"')
}

// appendDecimal appends d.String() to b; without making big.Int text when
// d's coefficient fits in 18 digits and its exponent is in -18..0 (every
// amount a provider sends), with String's defaults (trailing zeros of
// the fraction trimmed, no scientific notation). TestAppendDecimal checks
// it against String.
func appendDecimal(b []byte, d decimal.Decimal) []byte {
	exp := d.Exponent()
	if exp > 0 || exp < -18 || !decimal.TrimTrailingZeros || decimal.UseScientificNotation || d.NumDigits() > 18 {
		return append(b, d.String()...)
	}
	c := d.CoefficientInt64()
	if exp == 0 {
		return strconv.AppendInt(b, c, 10)
	}
	u := uint64(c)
	if c < 0 {
		b = append(b, '-')
		u = uint64(-c)
	}
	p := pow10u[-exp]
	b = strconv.AppendUint(b, u/p, 10)
	frac := u % p
	if frac == 0 {
		return b
	}
	var digits [18]byte
	n := int(-exp)
	for i := n - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	for n > 0 && digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// pow10u[i] is 10^i.
var pow10u = func() (p [19]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// time appends t as its MarshalJSON does.
func (e *enc) time(t time.Time) {
	if !timeInJSONRange(t) {
		e.bad = true
	}
	e.b = append(e.b, '"')
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	e.b = append(e.b, '"')
}

func (e *enc) snapshot(s *aggregate.Snapshot) {
	e.key(true, "available_points")
	e.dec(s.AvailablePoints)
	e.key(false, "lifetime_points")
	e.dec(s.LifetimePoints)
	e.key(false, "num_transactions")
	e.int(s.NumTransactions)
	e.b = append(e.b, '}')
}

func (e *enc) failure(f *aggregate.Failure) {
	e.b = append(e.b, '{')
	e.key(true, "code")
	e.int(f.Code)
	e.key(false, "name")
	e.str(f.Name)
	if f.Message != "" {
		e.key(false, "message")
		e.str(f.Message)
	}
	e.b = append(e.b, '}')
}

// fact appends a StageRecorded without its raw body (the facts a receipt
// record keeps have none).
func (e *enc) fact(f *aggregate.StageRecorded) {
	if len(f.Raw) > 0 {
		e.bad = true // encoding/json would compact it; never stored here
	}
	e.b = append(e.b, '{')
	e.key(true, "source")
	e.str(f.Source)
	e.key(false, "receipt_id")
	e.str(f.ReceiptID)
	if f.UserID != "" {
		e.key(false, "user_id")
		e.str(f.UserID)
	}
	e.key(false, "stage")
	e.str(string(f.Stage))
	if f.OccurredAt != nil {
		e.key(false, "occurred_at")
		e.time(*f.OccurredAt)
	}
	e.key(false, "body_sha256")
	e.str(f.BodySHA256)
	if f.Merchant != "" {
		e.key(false, "merchant")
		e.str(f.Merchant)
	}
	if f.Currency != "" {
		e.key(false, "currency")
		e.str(f.Currency)
	}
	if f.Amount != nil {
		e.key(false, "amount")
		e.dec(*f.Amount)
	}
	if a := f.Award; a != nil {
		e.key(false, "award")
		e.b = append(e.b, '{')
		first := true
		if a.TransactionID != "" {
			e.key(true, "transaction_id")
			e.str(a.TransactionID)
			first = false
		}
		e.key(first, "points")
		e.dec(a.Points)
		e.key(false, "bonus_points")
		e.dec(a.BonusPoints)
		e.key(false, "health_points")
		e.dec(a.HealthPoints)
		e.key(false, "co2e")
		e.dec(a.CO2e)
		e.key(false, "green_products")
		e.int(a.GreenProducts)
		if a.Snapshot != nil {
			e.key(false, "snapshot")
			e.b = append(e.b, '{')
			e.snapshot(a.Snapshot)
		}
		e.b = append(e.b, '}')
	}
	if f.Failure != nil {
		e.key(false, "failure")
		e.failure(f.Failure)
	}
	e.b = append(e.b, '}')
}

// facts appends a receipt's facts as encoding/json encodes the slice.
func (e *enc) facts(fs []aggregate.StageRecorded) {
	if fs == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.b = append(e.b, '[')
	for i := range fs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.fact(&fs[i])
	}
	e.b = append(e.b, ']')
}

func (e *enc) receiptView(v *aggregate.ReceiptView) {
	e.b = append(e.b, '{')
	e.key(true, "receipt_id")
	e.str(v.ReceiptID)
	e.key(false, "source")
	e.str(v.Source)
	if v.UserID != "" {
		e.key(false, "user_id")
		e.str(v.UserID)
	}
	e.key(false, "status")
	e.str(string(v.Status))
	e.key(false, "points")
	e.dec(v.Points)
	e.key(false, "bonus_points")
	e.dec(v.BonusPoints)
	e.key(false, "health_points")
	e.dec(v.HealthPoints)
	e.key(false, "co2e")
	e.dec(v.CO2e)
	e.key(false, "green_products")
	e.int(v.GreenProducts)
	if v.TransactionID != "" {
		e.key(false, "transaction_id")
		e.str(v.TransactionID)
	}
	if v.Merchant != "" {
		e.key(false, "merchant")
		e.str(v.Merchant)
	}
	if v.Currency != "" {
		e.key(false, "currency")
		e.str(v.Currency)
	}
	if v.Amount != nil {
		e.key(false, "amount")
		e.dec(*v.Amount)
	}
	e.key(false, "stages")
	if v.Stages == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i, s := range v.Stages {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, '{')
			e.key(true, "stage")
			e.str(string(s.Stage))
			e.key(false, "reported")
			e.bool(s.Reported)
			if s.OccurredAt != nil {
				e.key(false, "occurred_at")
				e.time(*s.OccurredAt)
			}
			if s.Corrections != 0 {
				e.key(false, "corrections")
				e.int(int64(s.Corrections))
			}
			if s.RecordedAt != nil {
				e.key(false, "recorded_at")
				e.time(*s.RecordedAt)
			}
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	if v.Failure != nil {
		e.key(false, "failure")
		e.failure(v.Failure)
	}
	if len(v.Anomalies) > 0 {
		e.key(false, "anomalies")
		e.b = append(e.b, '[')
		for i, a := range v.Anomalies {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, '{')
			e.key(true, "kind")
			e.str(a.Kind)
			e.key(false, "detail")
			e.str(a.Detail)
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	if len(v.UserIDs) > 0 {
		e.key(false, "user_ids")
		e.b = append(e.b, '[')
		for i, u := range v.UserIDs {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(u)
		}
		e.b = append(e.b, ']')
	}
	if v.Snapshot != nil {
		e.key(false, "snapshot")
		e.b = append(e.b, '{')
		e.snapshot(v.Snapshot)
	}
	e.b = append(e.b, '}')
}

func (e *enc) receiptRecord(r *receiptRecord) {
	e.b = append(e.b, '{')
	e.key(true, "view")
	e.receiptView(&r.View)
	e.key(false, "first_position")
	e.b = strconv.AppendUint(e.b, r.FirstPosition, 10)
	e.key(false, "last_position")
	e.b = strconv.AppendUint(e.b, r.LastPosition, 10)
	e.b = append(e.b, '}')
}

func (e *enc) contribution(c *statsContribution) {
	e.b = append(e.b, '{')
	e.key(true, "status")
	e.str(string(c.Status))
	if c.Day != "" {
		e.key(false, "day")
		e.str(c.Day)
	}
	if c.FailureStage != "" {
		e.key(false, "failure_stage")
		e.str(c.FailureStage)
	}
	e.key(false, "points")
	e.dec(c.Points)
	e.key(false, "co2e")
	e.dec(c.CO2e)
	if c.DurationMS != nil {
		e.key(false, "duration_ms")
		e.int(*c.DurationMS)
	}
	if c.ProviderTimed {
		e.key(false, "provider_timed")
		e.bool(true)
	}
	if c.AmountAnomaly {
		e.key(false, "amount_anomaly")
		e.bool(true)
	}
	e.b = append(e.b, '}')
}

func (e *enc) statsReceipt(s *statsReceipt) {
	e.b = append(e.b, '{')
	e.key(true, "received")
	if s.Received == nil {
		e.b = append(e.b, "null"...)
	} else {
		keys := make([]string, 0, len(s.Received))
		for k := range s.Received {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(k)
			e.b = append(e.b, ':')
			e.time(s.Received[aggregate.Stage(k)])
		}
		e.b = append(e.b, '}')
	}
	if s.Counted != nil {
		e.key(false, "counted")
		e.contribution(s.Counted)
	}
	e.b = append(e.b, '}')
}

func (e *enc) userRecord(u *userRecord) {
	t := &u.Totals
	e.b = append(e.b, `{"totals":{`...)
	e.key(true, "completed")
	e.int(t.Completed)
	e.key(false, "failed")
	e.int(t.Failed)
	e.key(false, "in_progress")
	e.int(t.InProgress)
	e.key(false, "points")
	e.dec(t.Points)
	e.key(false, "co2e")
	e.dec(t.CO2e)
	e.key(false, "green_products")
	e.int(t.GreenProducts)
	e.key(false, "health_points")
	e.dec(t.HealthPoints)
	if t.AmountAnomalies != 0 {
		e.key(false, "amount_anomalies")
		e.int(t.AmountAnomalies)
	}
	e.b = append(e.b, '}')
	e.key(false, "credited")
	e.dec(u.Credited)
	if u.Reported != nil {
		e.key(false, "reported")
		e.b = append(e.b, '{')
		e.snapshot(u.Reported)
	}
	e.key(false, "enrolled")
	e.bool(u.Enrolled)
	if u.EnrolledAt != nil {
		e.key(false, "enrolled_at")
		e.time(*u.EnrolledAt)
	}
	if u.CreditAnomalies != 0 {
		e.key(false, "credit_anomalies")
		e.int(u.CreditAnomalies)
	}
	e.b = append(e.b, '}')
}

func (e *enc) statsAgg(s *statsAgg) {
	e.b = append(e.b, '{')
	e.key(true, "completed")
	e.int(s.Completed)
	e.key(false, "failed")
	e.int(s.Failed)
	if s.InProgress != 0 {
		e.key(false, "in_progress")
		e.int(s.InProgress)
	}
	if len(s.FailedByStage) > 0 {
		e.key(false, "failed_by_stage")
		keys := make([]string, 0, len(s.FailedByStage))
		for k := range s.FailedByStage {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(k)
			e.b = append(e.b, ':')
			e.int(s.FailedByStage[k])
		}
		e.b = append(e.b, '}')
	}
	e.key(false, "points")
	e.dec(s.Points)
	e.key(false, "co2e")
	e.dec(s.CO2e)
	if len(s.Durations) > 0 {
		e.key(false, "durations")
		// encoding/json sorts integer keys by their text.
		keys := make([]string, 0, len(s.Durations))
		for k := range s.Durations {
			keys = append(keys, strconv.FormatInt(int64(k), 10))
		}
		slices.SortFunc(keys, strings.Compare)
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, '"')
			e.b = append(e.b, k...)
			e.b = append(e.b, '"', ':')
			n, _ := strconv.ParseInt(k, 10, 32)
			e.int(s.Durations[int32(n)])
		}
		e.b = append(e.b, '}')
	}
	if s.ProviderTimed != 0 {
		e.key(false, "provider_timed")
		e.int(s.ProviderTimed)
	}
	if s.NoDuration != 0 {
		e.key(false, "no_duration")
		e.int(s.NoDuration)
	}
	if s.AmountAnomalies != 0 {
		e.key(false, "amount_anomalies")
		e.int(s.AmountAnomalies)
	}
	if s.CreditAnomalies != 0 {
		e.key(false, "credit_anomalies")
		e.int(s.CreditAnomalies)
	}
	e.b = append(e.b, '}')
}

// putEncoded stores the JSON of v, written by fill (encoding/json's if
// fill finds a value it would refuse, so that the error is its).
func putEncoded(b *bolt.Bucket, k []byte, sizeHint int, fill func(*enc), v any) error {
	e := enc{b: make([]byte, 0, sizeHint)}
	fill(&e)
	if e.bad {
		return putJSON(b, k, v)
	}
	return b.Put(k, e.b)
}

func (e *enc) ledgerEntry(l *LedgerEntry) {
	e.b = append(e.b, '{')
	e.key(true, "position")
	e.b = strconv.AppendUint(e.b, l.Position, 10)
	e.key(false, "recorded_at")
	e.time(l.RecordedAt)
	e.key(false, "kind")
	e.str(l.Kind)
	e.key(false, "source")
	e.str(l.Source)
	if l.ReceiptID != "" {
		e.key(false, "receipt_id")
		e.str(l.ReceiptID)
	}
	if l.TransactionID != "" {
		e.key(false, "transaction_id")
		e.str(l.TransactionID)
	}
	e.key(false, "points")
	e.dec(l.Points)
	e.key(false, "total")
	e.dec(l.Total)
	e.key(false, "event")
	m := &l.Event
	e.b = append(e.b, '{')
	first := true
	opt := func(name, v string) {
		if v != "" {
			e.key(first, name)
			e.str(v)
			first = false
		}
	}
	opt("provider_event_type", m.ProviderEventType)
	opt("delivery_id", m.DeliveryID)
	e.key(first, "received_at")
	e.time(m.ReceivedAt)
	first = false
	opt("scheme", m.Scheme)
	opt("key_id", m.KeyID)
	opt("body_sha256", m.BodySHA256)
	if m.Correction {
		e.key(false, "correction")
		e.bool(true)
	}
	e.b = append(e.b, '}', '}')
}
