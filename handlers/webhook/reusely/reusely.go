package reusely

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: reusely`.
	Kind = "reusely"
	// SignatureHeader carries the signature of object_id ‖ timestamp, bare
	// (no "Bearer" or other prefix).
	SignatureHeader = "Authorization"

	// AlgorithmHMACSHA256 (the default): HMAC-SHA256 keyed with the secret
	// over object_id followed by timestamp.
	AlgorithmHMACSHA256 = "hmac-sha256"
	// AlgorithmSHA256: plain SHA-256 of secret ‖ object_id ‖ timestamp, for
	// an account whose signatures are a keyed hash that is not an HMAC (the
	// seed's "hash … using SHA-256 and your secret key" reads either way).
	AlgorithmSHA256 = "sha256"

	// EncodingHex (the default): the digest in hex, either case.
	EncodingHex = "hex"
	// EncodingBase64: the digest in base64, standard or URL alphabet,
	// padded or not.
	EncodingBase64 = "base64"

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
	keys      []*key
}

// key is one active secret.
type key struct {
	id     string // webhook.KeyID of the secret
	secret []byte
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the secret (AlgorithmHMACSHA256 only)
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
	if len(cfg.Secrets) == 0 {
		return fail("no secret configured")
	}
	p.keys = make([]*key, 0, len(cfg.Secrets))
	for i, s := range cfg.Secrets {
		if len(s) == 0 {
			return fail("secret %d is empty", i)
		}
		secret := append([]byte(nil), s...)
		k := &key{id: webhook.KeyID(secret), secret: secret}
		k.macs.New = func() any { return hmac.New(sha256.New, secret) }
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// Errors of Verify, all wrapping webhook.ErrUnauthenticated. They never
// carry the header's value or a secret.
var (
	errNoSignature        = fmt.Errorf("reusely: verify: no %s header: %w", SignatureHeader, webhook.ErrUnauthenticated)
	errSeveralSignatures  = fmt.Errorf("reusely: verify: more than one %s header: %w", SignatureHeader, webhook.ErrUnauthenticated)
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
	values := r.Header.Values(SignatureHeader)
	switch len(values) {
	case 0:
		return webhook.Verification{}, errNoSignature
	case 1:
	default:
		return webhook.Verification{}, errSeveralSignatures
	}
	var got [sha256.Size]byte
	if !p.decodeSignature(values[0], &got) {
		return webhook.Verification{}, errMalformedSignature
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
	var match *key
	for _, k := range p.keys {
		sum := k.sum(p.algorithm, env.pair.objectID, env.pair.timestamp)
		if hmac.Equal(sum[:], got[:]) && match == nil {
			match = k
		}
	}
	if match == nil {
		return webhook.Verification{}, errSignatureMismatch
	}
	return webhook.Verification{Scheme: p.scheme, KeyID: match.id}, nil
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

// sum is the keyed SHA-256 of objectID ‖ timestamp under k.
func (k *key) sum(algorithm, objectID, timestamp string) [sha256.Size]byte {
	var out [sha256.Size]byte
	if algorithm == AlgorithmSHA256 {
		h := sha256.New()
		h.Write(k.secret)
		h.Write([]byte(objectID))
		h.Write([]byte(timestamp))
		h.Sum(out[:0])
		return out
	}
	mac := k.macs.Get().(hash.Hash)
	mac.Write([]byte(objectID))
	mac.Write([]byte(timestamp))
	mac.Sum(out[:0])
	mac.Reset()
	k.macs.Put(mac)
	return out
}

// decodeSignature decodes an Authorization value in the configured
// encoding into dst: 64 hex digits of either case, or base64 in the
// standard or URL alphabet, padded (44 characters) or not (43).
// Surrounding spaces are ignored.
func (p *Provider) decodeSignature(v string, dst *[sha256.Size]byte) bool {
	v = strings.TrimSpace(v)
	if p.encoding == EncodingHex {
		if len(v) != hex.EncodedLen(sha256.Size) {
			return false
		}
		n, err := hex.Decode(dst[:], []byte(v))
		return err == nil && n == sha256.Size
	}
	var encs []*base64.Encoding
	switch len(v) {
	case base64.StdEncoding.EncodedLen(sha256.Size):
		encs = []*base64.Encoding{base64.StdEncoding.Strict(), base64.URLEncoding.Strict()}
	case base64.RawStdEncoding.EncodedLen(sha256.Size):
		encs = []*base64.Encoding{base64.RawStdEncoding.Strict(), base64.RawURLEncoding.Strict()}
	default:
		return false
	}
	var buf [sha256.Size + 3]byte // Decode may write up to DecodedLen bytes
	for _, enc := range encs {
		n, err := enc.Decode(buf[:], []byte(v))
		if err == nil && n == sha256.Size {
			copy(dst[:], buf[:n])
			return true
		}
	}
	return false
}

// Sign returns the Authorization value Reusely sends for a delivery whose
// envelope carries objectID and timestamp (their decimal text, as in the
// body): the lower-case hex HMAC-SHA256 of objectID ‖ timestamp under
// secret. receiptctl and tests use it to send signed deliveries.
func Sign(secret []byte, objectID, timestamp string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(objectID))
	mac.Write([]byte(timestamp))
	return hex.EncodeToString(mac.Sum(nil))
}

// SignWith is Sign for a source configured with another algorithm or
// encoding (empty strings select the defaults, as in Config). Base64 is
// standard and padded.
func SignWith(secret []byte, algorithm, encoding, objectID, timestamp string) (string, error) {
	k := &key{secret: secret}
	k.macs.New = func() any { return hmac.New(sha256.New, secret) }
	algorithm = cmp.Or(algorithm, AlgorithmHMACSHA256)
	if algorithm != AlgorithmHMACSHA256 && algorithm != AlgorithmSHA256 {
		return "", fmt.Errorf("reusely: sign: algorithm %q: want %q or %q", algorithm, AlgorithmHMACSHA256, AlgorithmSHA256)
	}
	sum := k.sum(algorithm, objectID, timestamp)
	switch cmp.Or(encoding, EncodingHex) {
	case EncodingHex:
		return hex.EncodeToString(sum[:]), nil
	case EncodingBase64:
		return base64.StdEncoding.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("reusely: sign: encoding %q: want %q or %q", encoding, EncodingHex, EncodingBase64)
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
	data object
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
	env.eventType, _ = jsonString(top["type"])
	env.data, _ = decodeObject(top["data"])
	env.pair, env.pairErr = readPair(top)
	return env, nil
}

// readPair reads the signed fields of a decoded body.
func readPair(top object) (signedPair, error) {
	var pair signedPair
	var err error
	if !present(top["object_id"]) {
		return pair, errors.New("no object_id")
	}
	if pair.objectID, err = signedDigits(top["object_id"]); err != nil {
		return pair, fmt.Errorf("object_id: %w", err)
	}
	if !present(top["timestamp"]) {
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
