package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/privacy"
)

// Pattern is the net/http.ServeMux pattern the Handler serves. It names no
// method: the Handler answers 404 for an unknown source before 405 for a
// method other than POST.
const Pattern = "/webhooks/{source}"

// TokenPattern is the same route with a path token, for providers that
// authenticate with a shared token in the URL (Reward, RETM); their Verify
// reads r.PathValue("token").
const TokenPattern = "/webhooks/{source}/{token}"

// PositionHeader carries, on every 200, the global position of the event the
// delivery is recorded as (for a duplicate, the event recorded before). A
// client passes it as min_position to read its own write.
const PositionHeader = "Receiptd-Position"

// Defaults of Options.
const (
	DefaultMaxBodyBytes  int64 = 1 << 20
	DefaultStoreDeadline       = 3 * time.Second
	DefaultRetryAfter          = 5 * time.Second
	DefaultMaxAttempts         = 5
)

// Options tune a Handler. The zero value is usable.
type Options struct {
	// MaxBodyBytes bounds a delivery's body; a larger one is answered 413.
	// Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// StoreDeadline bounds reading the stream, deciding and appending, so
	// that the answer comes well inside the providers' 5 s. Past it the
	// delivery is answered 503. Default DefaultStoreDeadline (3 s).
	StoreDeadline time.Duration
	// RetryAfter is sent (in whole seconds, at least 1) with every 503.
	// Default DefaultRetryAfter (5 s).
	RetryAfter time.Duration
	// MaxAttempts bounds the decide-append attempts when another writer
	// moved the stream (eventstore.ErrWrongRevision: another node on the
	// same log, since deliveries to one stream take turns in a Handler);
	// after the last one the delivery is answered 503. Default
	// DefaultMaxAttempts (5).
	MaxAttempts int
	// DecisionCacheBytes bounds the decision state the Handler keeps of
	// the streams it recently decided on (revision, dedupe keys and the
	// positions of their events, slot keys), estimated in heap bytes; the
	// least recently used streams are dropped past it and read again from
	// the log when next needed. Default DefaultDecisionCacheBytes (32 MiB).
	DecisionCacheBytes int64
	// Logger receives one line per refused or failed delivery (and, at
	// debug level, per accepted one). Default slog.Default().
	Logger *slog.Logger
	// Metrics, if not nil, counts deliveries and times them.
	Metrics *Metrics
	// SourceLimit, if not nil, is taken from once per delivery to a
	// configured source, keyed by the source's name, before anything else
	// is checked (before verification, so it bounds what unverified
	// senders cost too): a delivery it refuses is answered 429 with
	// Retry-After.
	SourceLimit Limiter
	// Clock stamps received_at. Default time.Now.
	Clock func() time.Time
	// Keys, if not nil, seals the personal data of every delivery about a
	// person (see PersonalData) under that person's data key before it is
	// appended. Nil stores everything in the clear.
	Keys Keys
}

// Keys is what the Handler needs of a privacy.Keyring: a subject's key to
// seal with, the pseudonym of a subject named by personal data, and keys
// to open sealed quarantined deliveries to re-process them.
type Keys interface {
	SealKey(ctx context.Context, s privacy.Subject) (*privacy.Key, error)
	Pseudonym(kind, value string) string
	privacy.Opener
}

// Limiter is a token bucket per key, such as internal/ratelimit's Keyed:
// Take reports whether key may go on at now and, if not, how long until it
// may.
type Limiter interface {
	Take(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

// Handler is the generic ingest endpoint, POST /webhooks/{source}. For each
// delivery it limits and reads the body once, has the source's Provider
// verify it on the raw bytes and normalize it, decides it against the events
// already in its stream and appends it, answering 200 only once the append
// is durable. See the package documentation for the statuses.
type Handler struct {
	store       eventstore.Store
	sources     map[string]*source
	maxBody     int64
	deadline    time.Duration
	retryAfter  string
	maxAttempts int
	log         *slog.Logger
	clock       func() time.Time
	limit       Limiter            // nil without a limit
	unknown     prometheus.Counter // nil without metrics
	bufs        sync.Pool          // of *bytes.Buffer
	decisions   *decisions
	keys        Keys // nil: nothing sealed
}

// source is one configured source.
type source struct {
	name     string
	provider Provider
	metrics  *sourceMetrics // nil without metrics
}

// New returns a Handler appending to store the deliveries of providers, one
// per configured source, keyed by Provider.Source. With no providers every
// delivery is answered 404 (a server run without sources still starts). It
// fails if store is nil, a provider is nil, a source name is invalid or given
// twice, or an option is negative.
func New(store eventstore.Store, providers []Provider, opts Options) (*Handler, error) {
	if store == nil {
		return nil, errors.New("webhook: new handler: nil store")
	}
	if opts.MaxBodyBytes < 0 || opts.StoreDeadline < 0 || opts.RetryAfter < 0 || opts.MaxAttempts < 0 || opts.DecisionCacheBytes < 0 {
		return nil, fmt.Errorf("webhook: new handler: negative option in %+v", opts)
	}
	h := &Handler{
		store:       store,
		sources:     make(map[string]*source, len(providers)),
		maxBody:     cmp.Or(opts.MaxBodyBytes, DefaultMaxBodyBytes),
		deadline:    cmp.Or(opts.StoreDeadline, DefaultStoreDeadline),
		maxAttempts: cmp.Or(opts.MaxAttempts, DefaultMaxAttempts),
		log:         opts.Logger,
		clock:       opts.Clock,
		limit:       opts.SourceLimit,
		unknown:     opts.Metrics.unknownSource(),
		decisions:   newDecisions(cmp.Or(opts.DecisionCacheBytes, DefaultDecisionCacheBytes)),
		keys:        opts.Keys,
	}
	retryAfter := cmp.Or(opts.RetryAfter, DefaultRetryAfter)
	h.retryAfter = strconv.FormatInt(max(1, int64(math.Ceil(retryAfter.Seconds()))), 10)
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	for i, p := range providers {
		if p == nil {
			return nil, fmt.Errorf("webhook: new handler: provider %d is nil", i)
		}
		name := p.Source()
		if err := CheckSourceName(name); err != nil {
			return nil, fmt.Errorf("webhook: new handler: %s provider %d: %w", p.Kind(), i, err)
		}
		if _, dup := h.sources[name]; dup {
			return nil, fmt.Errorf("webhook: new handler: source %q configured twice", name)
		}
		h.sources[name] = &source{name: name, provider: p, metrics: opts.Metrics.forSource(name)}
	}
	return h, nil
}

// Register mounts h on mux at Pattern.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(Pattern, h)
	mux.Handle(TokenPattern, h)
}

// result is what became of one delivery, for the answer, the metrics and the
// log line.
type result struct {
	outcome   outcome
	position  eventstore.Position // of the recorded event, for a 200
	bodySHA   string
	eventType string
	stream    string
	// correction: the event was appended as a correction of its slot.
	correction bool
	// quarantineDuplicate: the quarantined body was already quarantined.
	quarantineDuplicate bool
	reply               *Reply
	// retryAfter is the wait a 429 asks for.
	retryAfter time.Duration
	err        error
}

// ServeHTTP handles one delivery. It must be reached through Pattern (or any
// pattern with a {source} wildcard), which sets r.PathValue("source").
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.clock()
	name := r.PathValue("source")
	src := h.sources[name]
	res := result{outcome: outcomeUnknownSource}
	if src != nil {
		res = h.ingest(w, r, src, start.UTC())
	}
	status := h.answer(w, res)
	h.observe(r, src, name, res, status, h.clock().Sub(start))
}

// ingest runs one delivery to a configured source through every step up to
// its outcome. The steps, and so the statuses, are in the order of the
// external contract: 429 (Options.SourceLimit), 405, 415, 413, 401, 400,
// then quarantine or decide-and-append.
func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, src *source, receivedAt time.Time) result {
	if h.limit != nil {
		if ok, wait := h.limit.Take(src.name, receivedAt); !ok {
			return result{outcome: outcomeRateLimited, retryAfter: wait}
		}
	}
	if r.Method != http.MethodPost {
		return result{outcome: outcomeMethodNotAllowed}
	}
	if ct := r.Header.Get("Content-Type"); !isJSONMediaType(ct) {
		return result{outcome: outcomeUnsupportedMediaType, err: fmt.Errorf("content type %.64q", ct)}
	}
	if r.ContentLength > h.maxBody {
		return result{outcome: outcomeTooLarge, err: fmt.Errorf("declared length %d exceeds %d bytes", r.ContentLength, h.maxBody)}
	}

	buf := h.getBuffer()
	defer h.putBuffer(buf)
	if err := h.readBody(w, r, buf); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			return result{outcome: outcomeTooLarge, err: err}
		}
		return result{outcome: outcomeMalformed, err: err}
	}
	body := buf.Bytes()
	sum := sha256.Sum256(body)
	res := result{bodySHA: hex.EncodeToString(sum[:])}

	v, err := src.provider.Verify(r, body, receivedAt)
	if err != nil {
		res.outcome, res.err = outcomeBadSignature, err
		return res
	}

	// Normalize decodes the body, which checks it is JSON along the way: a
	// separate json.Valid pass is only needed to tell a body that is not
	// JSON at all (400) from one Normalize cannot map (quarantined).
	d := Delivery{Body: body, BodySHA256: res.bodySHA, ReceivedAt: receivedAt, Verification: v}
	n, err := src.provider.Normalize(d)
	if err != nil && !json.Valid(body) {
		res.outcome, res.err = outcomeMalformed, errors.New("body is not valid JSON")
		return res
	}
	if err == nil {
		err = checkNormalized(src, n)
	}
	res.eventType = truncate(n.EventType, maxEventTypeLen)
	meta := aggregate.Metadata{
		Source:            src.name,
		ProviderEventType: res.eventType,
		DeliveryID:        truncate(cmp.Or(n.DeliveryID, v.DeliveryID), maxDeliveryIDLen),
		ReceivedAt:        receivedAt,
		Scheme:            v.Scheme,
		KeyID:             v.KeyID,
		BodySHA256:        res.bodySHA,
	}

	// The store phase runs to its own deadline even if the client goes
	// away: an append cut short by a disconnect would leave the provider
	// to retry anyway, while a finished one is simply answered late.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.deadline)
	defer cancel()

	if err != nil {
		return h.quarantine(ctx, src, d, n, res, meta, err)
	}
	res.stream = n.Fact.Stream
	a, err := h.record(ctx, n, meta, body, h.sealing(src, d, n))
	res.reply = n.Reply
	switch {
	case err != nil:
		res.outcome, res.err = outcomeOf(err), err
	case a.duplicate:
		res.outcome, res.position = outcomeDuplicate, a.position
	default:
		res.outcome, res.position, res.correction = outcomeAccepted, a.position, a.correction
	}
	return res
}

// Bounds on provider-supplied strings copied into metadata and logs.
const (
	maxEventTypeLen  = 128
	maxDeliveryIDLen = 256
	maxReasonLen     = 1024
)

// quarantine records a verified delivery that could not be normalized in
// its source's quarantine stream, with its raw body and the reason, deduped
// by body hash so that a retried delivery is recorded once. meta is the
// delivery's metadata.
func (h *Handler) quarantine(ctx context.Context, src *source, d Delivery, n Normalized, res result, meta aggregate.Metadata, cause error) result {
	res.stream = aggregate.QuarantineStream(src.name)
	f := aggregate.Fact{
		Stream: res.stream,
		Type:   aggregate.TypeDeliveryQuarantined,
		Data: aggregate.Quarantined{
			Source:            src.name,
			ProviderEventType: res.eventType,
			Reason:            truncate(cause.Error(), maxReasonLen),
			BodySHA256:        d.BodySHA256,
			Raw:               d.Body,
		},
		DedupeKey:  "quarantined:" + d.BodySHA256,
		OnConflict: aggregate.Correct,
	}
	n.Fact = aggregate.Fact{}
	a, err := h.decideAndAppend(ctx, f, meta, d.Body, h.sealing(src, d, n))
	if err != nil {
		res.outcome, res.err = outcomeOf(err), fmt.Errorf("webhook: quarantine delivery (%v): %w", cause, err)
		return res
	}
	res.outcome, res.position, res.err = outcomeQuarantined, a.position, cause
	res.quarantineDuplicate = a.duplicate
	return res
}

// appended is what decideAndAppend did.
type appended struct {
	duplicate  bool
	correction bool
	// position of the appended event, or of the one it duplicates.
	position eventstore.Position
}

// decideAndAppend decides f on its stream and appends it unless it is a
// duplicate, with the expected revision it decided at, in the stream's
// turn (see decisions): from the cached decision state of the stream,
// filled from the log on a miss. When another writer moved the stream
// (another node on the same log) it catches up with what was added and
// decides again, up to MaxAttempts times. meta is the delivery's metadata;
// the fact's dedupe and slot keys, the event id and the correction flag are
// added here. The event is the v2 encoding (eventcodec.Encode) of the fact,
// the metadata and raw, the provider's body exactly as received; sealed
// (eventcodec.EncodeSealed) under its subject's data key when seal is not
// nil.
func (h *Handler) decideAndAppend(ctx context.Context, f aggregate.Fact, meta aggregate.Metadata, raw []byte, seal *sealing) (appended, error) {
	s, err := h.decisions.acquire(ctx, f.Stream)
	if err != nil {
		return appended{}, err
	}
	defer h.decisions.release(s)

	var (
		ev      aggregate.Event
		encoded bool
		sealBy  eventcodec.Sealing
	)
	fk := keysOf(f.DedupeKey, f.SlotKey)
	id := EventID(meta.Source, f.DedupeKey, meta.BodySHA256)
	meta.DedupeKey, meta.SlotKey = f.DedupeKey, f.SlotKey
	meta.CorrelationID, meta.CausationID = id, id
	for attempt := 1; ; attempt++ {
		if !s.known || s.stale {
			if err := h.catchUp(ctx, s); err != nil {
				return appended{}, err
			}
		} else {
			h.decisions.hits.Add(1)
		}
		decision, dupOf, err := s.decide(f, fk)
		if err != nil {
			return appended{}, err
		}
		switch decision.Outcome {
		case aggregate.Duplicate:
			return appended{duplicate: true, position: dupOf}, nil
		case aggregate.Append:
		default:
			return appended{}, fmt.Errorf("webhook: decide on stream %q: unexpected outcome %v", f.Stream, decision.Outcome)
		}

		if seal != nil && sealBy.Key == nil {
			// Only now, once the delivery is known to be appended: a
			// duplicate creates no key.
			key, err := h.keys.SealKey(ctx, seal.subject)
			if err != nil {
				return appended{}, fmt.Errorf("webhook: the data key for stream %q: %w: %w", f.Stream, eventstore.ErrUnavailable, err)
			}
			sealBy = eventcodec.Sealing{Key: key, Attributes: seal.attributes}
		}
		if !encoded || meta.Correction != decision.Correction {
			meta.Correction = decision.Correction
			if ev, err = eventcodec.EncodeSealed(id, f, meta, raw, sealBy); err != nil {
				return appended{}, fmt.Errorf("webhook: encode the event for stream %q: %w", f.Stream, err)
			}
			encoded = true
		}
		ar, err := h.store.Append(ctx, f.Stream, s.expected(), ev)
		if err == nil {
			if ar.NextRevision != s.rev {
				s.stale = true // the store counts otherwise: trust the log next time
			}
			s.record(fk, ar.Position)
			return appended{correction: decision.Correction, position: ar.Position}, nil
		}
		s.afterFailedAppend(err)
		if !errors.Is(err, eventstore.ErrWrongRevision) || attempt >= h.maxAttempts || ctx.Err() != nil {
			return appended{}, fmt.Errorf("webhook: append to stream %q (attempt %d of %d): %w", f.Stream, attempt, h.maxAttempts, err)
		}
	}
}

// encodeJSON is json.Marshal without HTML escaping: a raw body is stored
// as sent but for insignificant whitespace, "M&S" staying "M&S".
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// record claims n's signature if it has a claim (see Handler.claim), then
// decides and appends its fact, with raw, the delivery's body, sealed as
// seal says (nil: in the clear).
func (h *Handler) record(ctx context.Context, n Normalized, meta aggregate.Metadata, raw []byte, seal *sealing) (appended, error) {
	if n.Claim != "" {
		if err := h.claim(ctx, n, meta); err != nil {
			return appended{}, err
		}
	}
	return h.decideAndAppend(ctx, n.Fact, meta, raw, seal)
}

// sealing is whose data key a delivery is sealed under, and which of its
// attributes are personal.
type sealing struct {
	subject    privacy.Subject
	attributes []string
}

// sealing returns how to seal delivery d of src (n what Normalize made of
// it), or nil to store it in the clear: without Options.Keys, for a
// provider that carries no personal data, or a delivery about no one.
func (h *Handler) sealing(src *source, d Delivery, n Normalized) *sealing {
	if h.keys == nil {
		return nil
	}
	s, attrs, ok := SubjectOf(h.keys, src.name, src.provider, d, n)
	if !ok {
		return nil
	}
	return &sealing{subject: s, attributes: attrs}
}

// SubjectOf returns the subject whose data key delivery d of source (its
// provider p, n what Normalize made of it) is sealed under, and the names
// of its personal attributes; ok is false for a delivery about no one, or
// of a provider that carries no personal data (not a PersonalData). A
// subject named by personal data, or by an id no subject can have (too
// long, a NUL byte), is named by its keys' pseudonym of it. The Handler
// seals with it, and so does receiptd privacy seal, on a log written
// before.
func SubjectOf(keys Keys, source string, p Provider, d Delivery, n Normalized) (subject privacy.Subject, attributes []string, ok bool) {
	pd, isPD := p.(PersonalData)
	if !isPD {
		return privacy.Subject{}, nil, false
	}
	personal := pd.Personal(d, n)
	if personal.Subject.IsZero() {
		return privacy.Subject{}, nil, false
	}
	s := privacy.Subject{Source: cmp.Or(personal.Subject.Namespace, source), ID: personal.Subject.ID}
	if personal.Subject.Pseudonymous != "" {
		s.ID = keys.Pseudonym(personal.Subject.Pseudonymous, s.ID)
	} else if s.Check() != nil {
		s.ID = keys.Pseudonym("id", s.ID)
	}
	if s.Check() != nil {
		return privacy.Subject{}, nil, false
	}
	return s, personal.Attributes, true
}

// checkNormalized refuses what no provider should return: a fact the
// aggregate could not decide, one outside the provider's own source or in
// a stream that holds no entity, or a claim that cannot name a stream.
func checkNormalized(src *source, n Normalized) error {
	bad := func(why string) error {
		return fmt.Errorf("webhook: %s provider for %q returned an invalid fact: %s: %w", src.provider.Kind(), src.name, why, aggregate.ErrUnnormalizable)
	}
	f := n.Fact
	category, source, id, err := aggregate.ParseStreamID(f.Stream)
	switch {
	case err != nil:
		return bad(err.Error())
	case source != src.name:
		return bad(fmt.Sprintf("stream %q is not of source %q", f.Stream, src.name))
	case category == aggregate.CategoryQuarantine || category == aggregate.CategoryClaim || category == aggregate.CategorySubject || id == "":
		return bad(fmt.Sprintf("stream %q is not an entity stream", f.Stream))
	case f.Type == "":
		return bad("no event type")
	case f.DedupeKey == "":
		return bad("no dedupe key")
	case f.Data == nil:
		return bad("no data")
	}
	if err := checkClaim(n.Claim); err != nil {
		return bad(err.Error())
	}
	return nil
}

// readBody reads r's body, at most h.maxBody bytes, into buf.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) error {
	if r.Body == nil {
		return nil
	}
	if r.ContentLength > 0 {
		// One allocation for the whole body, plus the room ReadFrom wants
		// to see EOF.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody)); err != nil {
		return fmt.Errorf("webhook: read body: %w", err)
	}
	return nil
}

// maxPooledBuffer: larger buffers (rare, big bodies) are left to the GC
// rather than pinned in the pool.
const maxPooledBuffer = 256 << 10

func (h *Handler) getBuffer() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (h *Handler) putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	h.bufs.Put(b)
}

// isJSONMediaType reports whether a Content-Type names JSON:
// application/json or application/*+json, with any parameters.
func isJSONMediaType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	if strings.EqualFold(mt, "application/json") {
		return true
	}
	const prefix, suffix = "application/", "+json"
	return len(mt) > len(prefix)+len(suffix) &&
		strings.EqualFold(mt[:len(prefix)], prefix) &&
		strings.EqualFold(mt[len(mt)-len(suffix):], suffix) &&
		!strings.ContainsAny(mt[len(prefix):len(mt)-len(suffix)], "/ \t")
}

// answerBody is the JSON body of every answer but a provider's Reply: the
// status and position of a 200, or the error of the outcome.
type answerBody struct {
	Status   string `json:"status,omitempty"`
	Position string `json:"position,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Header values every answer has, shared: net/http only reads them.
var (
	headerJSON    = []string{"application/json"}
	headerNosniff = []string{"nosniff"}
)

// answer writes the answer to a delivery and returns its status.
func (h *Handler) answer(w http.ResponseWriter, res result) int {
	info := res.outcome.info()
	hdr := w.Header()
	hdr["Content-Type"] = headerJSON
	hdr["X-Content-Type-Options"] = headerNosniff
	status, ans := info.status, answerBody{Error: info.message}
	var body []byte
	switch {
	case status == http.StatusOK:
		pos := res.position.String()
		hdr.Set(PositionHeader, pos)
		if res.reply != nil {
			status, body = res.reply.Status, res.reply.Body
			break
		}
		// {"status":…,"position":…} as json.Marshal writes it, without
		// its reflection: the label is one of the outcome table's and
		// the position digits, neither needs escaping.
		body = make([]byte, 0, len(`{"status":"","position":""}`)+len(info.label)+len(pos)+1)
		body = append(body, `{"status":"`...)
		body = append(body, info.label...)
		body = append(body, `","position":"`...)
		body = append(body, pos...)
		body = append(body, "\"}\n"...)
	case res.outcome == outcomeMethodNotAllowed:
		hdr.Set("Allow", http.MethodPost)
	case res.outcome == outcomeStoreUnavailable:
		hdr.Set("Retry-After", h.retryAfter)
	case res.outcome == outcomeRateLimited:
		hdr.Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(res.retryAfter.Seconds()))), 10))
	}
	if body == nil {
		body, _ = json.Marshal(ans) // strings only: it cannot fail
		body = append(body, '\n')
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client gone away is not our failure
	return status
}

// observe counts a delivery (src is nil for an unknown source) and logs it.
func (h *Handler) observe(r *http.Request, src *source, name string, res result, status int, elapsed time.Duration) {
	if src == nil {
		if h.unknown != nil {
			h.unknown.Inc()
		}
	} else if src.metrics != nil {
		src.metrics.deliveries[res.outcome].Inc()
		src.metrics.ingest.Observe(elapsed.Seconds())
	}

	info := res.outcome.info()
	ctx := r.Context()
	if !h.log.Enabled(ctx, info.level) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("source", truncate(name, maxSourceName)),
		slog.String("outcome", info.label),
		slog.Int("status", status),
	)
	if src != nil {
		attrs = append(attrs, slog.String("kind", src.provider.Kind()))
	}
	if res.bodySHA != "" {
		attrs = append(attrs, slog.String("body_sha256", res.bodySHA))
	}
	if res.eventType != "" {
		attrs = append(attrs, slog.String("event_type", res.eventType))
	}
	if res.stream != "" {
		attrs = append(attrs, slog.String("stream", res.stream))
	}
	if info.status == http.StatusOK {
		attrs = append(attrs, slog.String("position", res.position.String()))
	}
	if res.correction {
		attrs = append(attrs, slog.Bool("correction", true))
	}
	if res.quarantineDuplicate {
		attrs = append(attrs, slog.Bool("already_quarantined", true))
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("error", res.err.Error()))
	}
	attrs = append(attrs,
		slog.String("remote_addr", r.RemoteAddr),
		slog.Duration("elapsed", elapsed),
	)
	h.log.LogAttrs(ctx, info.level, "webhook delivery", attrs...)
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
