package reusely

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
	"github.com/receiptd/receiptd/handlers/webhook/internal/sigcheck"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: reusely`.
	Kind = "reusely"
	// SignatureHeader carries the signature of object_id ‖ timestamp, bare
	// (no "Bearer" or other prefix).
	SignatureHeader = signer.ReuselyHeader

	// AlgorithmHMACSHA256 (the default): HMAC-SHA256 keyed with the secret
	// over object_id followed by timestamp.
	AlgorithmHMACSHA256 = signer.ReuselyHMACSHA256
	// AlgorithmSHA256: plain SHA-256 of secret ‖ object_id ‖ timestamp, for
	// an account whose signatures are a keyed hash that is not an HMAC (the
	// seed's "hash … using SHA-256 and your secret key" reads either way).
	AlgorithmSHA256 = signer.ReuselySHA256

	// EncodingHex (the default): the digest in hex, either case.
	EncodingHex = signer.ReuselyHex
	// EncodingBase64: the digest in base64, standard or URL alphabet,
	// padded or not.
	EncodingBase64 = signer.ReuselyBase64

	// SchemeHMACSHA256 and SchemeSHA256 are the verification schemes
	// recorded in the event metadata. They name what was checked: a keyed
	// hash of the signed pair, not of the body.
	SchemeHMACSHA256 = "reusely-hmac-sha256"
	SchemeSHA256     = "reusely-sha256"

	// DefaultTolerance bounds |received − timestamp|. Reusely retries a
	// failed delivery 10 minutes after it and again 30 minutes after that
	// (+40 minutes in all); an hour leaves room for the slow answers and
	// clock skew on top.
	DefaultTolerance = time.Hour
)

// Config configures one Reusely source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// Secrets are the webhook secrets currently active, as bytes (the
	// secret string as Reusely issued it, not decoded). A signature made
	// with any of them verifies, so a rotation can overlap. At least one is
	// required and none may be empty.
	Secrets [][]byte
	// Algorithm is AlgorithmHMACSHA256 (the default when empty) or
	// AlgorithmSHA256.
	Algorithm string
	// Encoding is EncodingHex (the default when empty) or EncodingBase64.
	Encoding string
	// Tolerance bounds the difference, either way, between the envelope's
	// timestamp and the time the delivery is received. Zero means
	// DefaultTolerance; it may not be negative. It is the window in which
	// a captured Authorization value can be replayed with another body
	// (see the package documentation): keep it as short as the retries
	// allow.
	Tolerance time.Duration
}

// Provider verifies and normalizes the deliveries of one Reusely source. It
// implements webhook.Provider and is safe for concurrent use.
type Provider struct {
	source    string
	algorithm string
	scheme    string
	encoding  string
	tolerance time.Duration
	keys      []*sigcheck.Key
}

// New returns the Provider of cfg. It fails when the source name is invalid,
// no secret is configured, a secret is empty, the algorithm or encoding is
// not one of the constants, or the tolerance is negative. The secrets are
// copied.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("reusely: new provider: %w", err)
	}
	fail := func(format string, args ...any) (*Provider, error) {
		return nil, fmt.Errorf("reusely: new provider for source %q: %s", cfg.Source, fmt.Sprintf(format, args...))
	}
	p := &Provider{
		source:    cfg.Source,
		algorithm: cmp.Or(cfg.Algorithm, AlgorithmHMACSHA256),
		encoding:  cmp.Or(cfg.Encoding, EncodingHex),
		tolerance: cmp.Or(cfg.Tolerance, DefaultTolerance),
	}
	switch p.algorithm {
	case AlgorithmHMACSHA256:
		p.scheme = SchemeHMACSHA256
	case AlgorithmSHA256:
		p.scheme = SchemeSHA256
	default:
		return fail("algorithm %q: want %q or %q", cfg.Algorithm, AlgorithmHMACSHA256, AlgorithmSHA256)
	}
	if p.encoding != EncodingHex && p.encoding != EncodingBase64 {
		return fail("encoding %q: want %q or %q", cfg.Encoding, EncodingHex, EncodingBase64)
	}
	if cfg.Tolerance < 0 {
		return fail("negative tolerance %v", cfg.Tolerance)
	}
	var err error
	if p.keys, err = sigcheck.NewKeys(cfg.Secrets); err != nil {
		return fail("%v", err)
	}
	return p, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// The header Verify reads, and the errors of Verify, all wrapping
// webhook.ErrUnauthenticated. They never carry the header's value or a
// secret.
var (
	signature             = sigcheck.NewHeader(Kind, SignatureHeader)
	errMalformedSignature = fmt.Errorf("reusely: verify: %s is not a SHA-256 digest in the configured encoding: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSignatureMismatch  = fmt.Errorf("reusely: verify: signature of object_id and timestamp matches no active secret: %w", webhook.ErrUnauthenticated)
)

// Verify checks the Authorization header against the keyed SHA-256 of the
// body's own object_id followed by its timestamp, under each active secret,
// in constant time, and that the timestamp is within the tolerance of
// receivedAt, either way.
//
// The signature does not cover the body: reading object_id and timestamp
// from it is the only way to know what was signed, so Verify decodes the
// body (a body that is not a JSON object with both fields fails, as
// unauthenticated: nothing in it can be bound to the signature). What the
// rest of the body may say is bounded by the claim on the signed pair that
// Normalize returns and the handler records in the log (see the package
// documentation). Verify itself keeps no state.
func (p *Provider) Verify(r *http.Request, body []byte, receivedAt time.Time) (webhook.Verification, error) {
	var got [sha256.Size]byte
	if err := p.readSignature(r.Header, &got); err != nil {
		return webhook.Verification{}, err
	}
	env, err := decodeEnvelope(body)
	if err == nil {
		err = env.pairErr
	}
	if err != nil {
		return webhook.Verification{}, fmt.Errorf("reusely: verify: cannot read the signed fields from the body: %v: %w", err, webhook.ErrUnauthenticated)
	}
	if err := p.checkTime(env.pair, receivedAt); err != nil {
		return webhook.Verification{}, err
	}
	var match *sigcheck.Key
	for _, k := range p.keys {
		sum := p.sum(k, env.pair.objectID, env.pair.timestamp)
		if hmac.Equal(sum[:], got[:]) && match == nil {
			match = k
		}
	}
	if match == nil {
		return webhook.Verification{}, errSignatureMismatch
	}
	return webhook.Verification{Scheme: p.scheme, KeyID: match.ID}, nil
}

// maxUnix bounds a timestamp so that time.Unix cannot overflow (year ~36800).
const maxUnix = 1 << 40

// checkTime refuses a signed timestamp further than the tolerance from
// receivedAt.
func (p *Provider) checkTime(pair signedPair, receivedAt time.Time) error {
	if pair.unix > maxUnix {
		return fmt.Errorf("reusely: verify: timestamp %s out of range: %w", pair.timestamp, webhook.ErrUnauthenticated)
	}
	skew := receivedAt.Sub(time.Unix(pair.unix, 0))
	switch {
	case skew > p.tolerance:
		return fmt.Errorf("reusely: verify: timestamp %s is %v before receipt, beyond the tolerance %v: %w", pair.timestamp, skew.Round(time.Second), p.tolerance, webhook.ErrUnauthenticated)
	case skew < -p.tolerance:
		return fmt.Errorf("reusely: verify: timestamp %s is %v after receipt, beyond the tolerance %v: %w", pair.timestamp, (-skew).Round(time.Second), p.tolerance, webhook.ErrUnauthenticated)
	}
	return nil
}

// sum is the keyed SHA-256 of objectID ‖ timestamp under k, with the
// source's algorithm.
func (p *Provider) sum(k *sigcheck.Key, objectID, timestamp string) [sha256.Size]byte {
	if p.algorithm == AlgorithmSHA256 {
		var out [sha256.Size]byte
		h := sha256.New()
		h.Write(k.Secret)
		h.Write([]byte(objectID))
		h.Write([]byte(timestamp))
		h.Sum(out[:0])
		return out
	}
	return k.Sum([]byte(objectID), []byte(timestamp))
}

// readSignature decodes the request's one Authorization value, in the
// configured encoding, into dst: 64 hex digits of either case, or base64
// in the standard or URL alphabet, padded (44 characters) or not (43).
// Surrounding spaces are ignored.
func (p *Provider) readSignature(h http.Header, dst *[sha256.Size]byte) error {
	v, err := signature.Value(h)
	if err != nil {
		return err
	}
	v = strings.TrimSpace(v)
	if p.encoding == EncodingHex && !sigcheck.DecodeHex(v, dst) ||
		p.encoding != EncodingHex && !sigcheck.DecodeBase64(v, dst, true) {
		return errMalformedSignature
	}
	return nil
}

// Sign returns the Authorization value Reusely sends for a delivery whose
// envelope carries objectID and timestamp (their decimal text, as in the
// body): the lower-case hex HMAC-SHA256 of objectID ‖ timestamp under
// secret. receiptctl and tests use it to send signed deliveries.
func Sign(secret []byte, objectID, timestamp string) string {
	sig, _ := signer.Reusely(secret, AlgorithmHMACSHA256, EncodingHex, objectID, timestamp) // the defaults cannot fail
	return sig
}

// SignWith is Sign for a source configured with another algorithm or
// encoding (empty strings select the defaults, as in Config). Base64 is
// standard and padded. It is signer.Reusely.
func SignWith(secret []byte, algorithm, encoding, objectID, timestamp string) (string, error) {
	return signer.Reusely(secret, algorithm, encoding, objectID, timestamp)
}

// signedPair is what a Reusely signature covers: the envelope's object_id
// and timestamp, as decimal text.
type signedPair struct {
	objectID  string
	timestamp string
	unix      int64
}

// slot is the slot key of every fact delivered under the pair.
func (s signedPair) slot() string {
	return "signed:" + s.objectID + ":" + s.timestamp
}

// claim is the webhook.Normalized.Claim of every delivery under the pair:
// the handler binds the pair to the first delivery's stream and body in
// claim-{source}.{object_id}:{timestamp}.
func (s signedPair) claim() string {
	return s.objectID + ":" + s.timestamp
}

// envelope is a delivery's body decoded one level deep, as Verify and
// Normalize both read it (with the same exact-key rules, so that they agree
// on what was signed).
type envelope struct {
	// eventType is the body's "type" string; empty if absent or not a string.
	eventType string
	pair      signedPair
	// pairErr says why pair could not be read.
	pairErr error
	// data is the body's "data" object; nil if absent or not an object.
	data map[string]json.RawMessage
}

// errNotObject: a body that is not a JSON object.
var errNotObject = errors.New("body is not a JSON object")

// decodeEnvelope decodes body. It fails only when body is not a JSON
// object; a missing or malformed signed field is reported in pairErr.
func decodeEnvelope(body []byte) (envelope, error) {
	top, err := jsonfield.Object(body)
	if err != nil {
		return envelope{}, fmt.Errorf("%w: %v", errNotObject, err)
	}
	var env envelope
	env.eventType, _ = jsonfield.String(top["type"])
	env.data, _ = jsonfield.ObjectValue(top["data"])
	env.pair, env.pairErr = readPair(top)
	return env, nil
}

// readPair reads the signed fields of a decoded body.
func readPair(top map[string]json.RawMessage) (signedPair, error) {
	var pair signedPair
	var err error
	if !jsonfield.Present(top["object_id"]) {
		return pair, errors.New("no object_id")
	}
	if pair.objectID, err = signedDigits(top["object_id"]); err != nil {
		return pair, fmt.Errorf("object_id: %w", err)
	}
	if !jsonfield.Present(top["timestamp"]) {
		return pair, errors.New("no timestamp")
	}
	if pair.timestamp, err = signedDigits(top["timestamp"]); err != nil {
		return pair, fmt.Errorf("timestamp: %w", err)
	}
	if pair.unix, err = parseUnix(pair.timestamp); err != nil {
		return pair, fmt.Errorf("timestamp: %w", errNotDigits)
	}
	return pair, nil
}
