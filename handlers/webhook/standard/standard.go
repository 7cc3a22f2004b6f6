package standard

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/sigcheck"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

const (
	// Kind is the provider scheme name, as in the config's `kind: standard`.
	Kind = "standard"

	// The headers of a Standard Webhooks delivery.
	HeaderID        = signer.StandardID
	HeaderTimestamp = signer.StandardTimestamp
	HeaderSignature = signer.StandardSignature

	// Scheme is the verification scheme recorded in the event metadata:
	// the spec's symmetric signature, "v1".
	Scheme = "standard-webhooks-v1"
	// SecretPrefix marks a secret serialized as the spec says: "whsec_"
	// and the base64 of the key.
	SecretPrefix = signer.StandardSecretPrefix

	// DefaultTolerance bounds |received − webhook-timestamp|, as the spec's
	// reference implementations do.
	DefaultTolerance = 5 * time.Minute
	// DefaultCategory is the stream category of a source's entities when
	// Config.Category is empty: entity-{source}.{id}.
	DefaultCategory = "entity"
	// DefaultEntityField is where the entity id is read from: the payload
	// structure the spec recommends puts the event's data under "data".
	DefaultEntityField = "data.id"
	// DefaultStatusField is where an entity's status is read from, if sent.
	DefaultStatusField = "data.status"
)

// Config configures one Standard Webhooks source.
type Config struct {
	// Source is the configured source name (webhook.CheckSourceName): the
	// {source} of POST /webhooks/{source} and of the stream ids.
	Source string
	// Secrets are the signing secrets currently active. Each is either
	// "whsec_" followed by the standard base64 of the key (padded or not),
	// as the spec serializes secrets, or, without that prefix, the key's raw
	// bytes. A signature made with any of them verifies, so a rotation can
	// overlap. At least one is required and none may be empty.
	Secrets [][]byte
	// Tolerance bounds the difference, either way, between webhook-timestamp
	// and the time the delivery is received. Zero means DefaultTolerance;
	// it may not be negative.
	Tolerance time.Duration
	// Category is the stream category of the source's entities ("order",
	// "customer", …): facts go to {Category}-{Source}.{entity id}. Empty
	// means DefaultCategory. 1 to 32 lower-case ASCII letters, digits or
	// '_', starting with a letter; "receipt" and "quarantine" are reserved
	// for receipt and quarantine streams.
	Category string
	// EntityField is the dot-separated path, from the top of the JSON body,
	// to the entity id (a string or an integer). Empty means
	// DefaultEntityField; "id" reads a payload whose data is squashed into
	// the top-level object. Keys that themselves contain '.' cannot be
	// named.
	EntityField string
	// StatusField is the path to the entity's status, a string, if the
	// payload states one. Empty means DefaultStatusField.
	StatusField string
}

// Provider verifies and normalizes the deliveries of one Standard Webhooks
// source. It implements webhook.Provider and is safe for concurrent use.
type Provider struct {
	source      string
	tolerance   time.Duration
	category    string
	entityField string
	entityPath  []string
	statusPath  []string
	keys        []*sigcheck.Key // of the decoded keys
}

// New returns the Provider of cfg. It fails when the source name is invalid,
// no secret is configured, a secret is empty or its "whsec_" form does not
// decode, the tolerance is negative, or the category or a field path is
// malformed. The secrets are copied.
func New(cfg Config) (*Provider, error) {
	if err := webhook.CheckSourceName(cfg.Source); err != nil {
		return nil, fmt.Errorf("standard: new provider: %w", err)
	}
	fail := func(format string, args ...any) (*Provider, error) {
		return nil, fmt.Errorf("standard: new provider for source %q: %s", cfg.Source, fmt.Sprintf(format, args...))
	}
	p := &Provider{
		source:      cfg.Source,
		tolerance:   cmp.Or(cfg.Tolerance, DefaultTolerance),
		category:    cmp.Or(cfg.Category, DefaultCategory),
		entityField: cmp.Or(cfg.EntityField, DefaultEntityField),
	}
	if cfg.Tolerance < 0 {
		return fail("negative tolerance %v", cfg.Tolerance)
	}
	if err := checkCategory(p.category); err != nil {
		return fail("%v", err)
	}
	var err error
	if p.entityPath, err = fieldPath(p.entityField); err != nil {
		return fail("entity field: %v", err)
	}
	if p.statusPath, err = fieldPath(cmp.Or(cfg.StatusField, DefaultStatusField)); err != nil {
		return fail("status field: %v", err)
	}
	if len(cfg.Secrets) == 0 {
		return fail("no secret configured")
	}
	p.keys = make([]*sigcheck.Key, 0, len(cfg.Secrets))
	for i, s := range cfg.Secrets {
		k, err := DecodeSecret(s)
		if err != nil {
			return fail("secret %d: %v", i, err)
		}
		p.keys = append(p.keys, sigcheck.NewKey(k))
	}
	return p, nil
}

// DecodeSecret returns the HMAC key of a secret as Config.Secrets takes it:
// the base64 after "whsec_", or the bytes themselves without that prefix
// (signer.StandardKey). The result is a copy.
func DecodeSecret(secret []byte) ([]byte, error) { return signer.StandardKey(secret) }

// maxCategory bounds a category: it is part of every stream id.
const maxCategory = 32

// checkCategory enforces Config.Category's syntax.
func checkCategory(c string) error {
	if c == "" || len(c) > maxCategory || c[0] < 'a' || c[0] > 'z' {
		return fmt.Errorf("category %q: want 1 to %d lower-case letters, digits or '_', starting with a letter", c, maxCategory)
	}
	for i := 0; i < len(c); i++ {
		if ch := c[i]; !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '_') {
			return fmt.Errorf("category %q: want 1 to %d lower-case letters, digits or '_', starting with a letter", c, maxCategory)
		}
	}
	if c == aggregate.CategoryReceipt || c == aggregate.CategoryQuarantine {
		return fmt.Errorf("category %q is reserved", c)
	}
	return nil
}

// maxFieldDepth bounds a field path.
const maxFieldDepth = 8

// fieldPath splits a dot-separated field path.
func fieldPath(field string) ([]string, error) {
	path := strings.Split(field, ".")
	if len(path) > maxFieldDepth {
		return nil, fmt.Errorf("%q is deeper than %d", field, maxFieldDepth)
	}
	for _, k := range path {
		if k == "" {
			return nil, fmt.Errorf("%q has an empty key", field)
		}
	}
	return path, nil
}

// Source returns the configured source name.
func (p *Provider) Source() string { return p.source }

// Kind returns Kind.
func (p *Provider) Kind() string { return Kind }

// The headers Verify reads.
var (
	idHeader        = sigcheck.NewHeader(Kind, HeaderID)
	timestampHeader = sigcheck.NewHeader(Kind, HeaderTimestamp)
	signatureHeader = sigcheck.NewHeader(Kind, HeaderSignature)
)

// Errors of Verify, all wrapping webhook.ErrUnauthenticated. They never
// carry a signature or a secret.
var (
	errMalformedID        = fmt.Errorf("standard: verify: %s is not 1 to %d printable ASCII characters without '.': %w", HeaderID, maxWebhookIDLen, webhook.ErrUnauthenticated)
	errMalformedTimestamp = fmt.Errorf("standard: verify: %s is not Unix seconds: %w", HeaderTimestamp, webhook.ErrUnauthenticated)
	errNoV1Signature      = fmt.Errorf("standard: verify: %s lists no v1 signature: %w", HeaderSignature, webhook.ErrUnauthenticated)
	errMalformedSignature = fmt.Errorf("standard: verify: no v1 signature in %s is a base64 HMAC-SHA256: %w", HeaderSignature, webhook.ErrUnauthenticated)
	errSignatureMismatch  = fmt.Errorf("standard: verify: no v1 signature matches an active secret: %w", webhook.ErrUnauthenticated)
)

// Verify checks a delivery as Standard Webhooks v1 specifies: the
// HMAC-SHA256, under each active secret, of webhook-id "." webhook-timestamp
// "." the raw body must equal one of the v1 signatures listed (space
// separated) in webhook-signature, compared in constant time; signatures of
// other versions ("v1a", …) are ignored. webhook-timestamp must be within
// the tolerance of receivedAt, either way. The webhook-id becomes the
// Verification's DeliveryID.
func (p *Provider) Verify(r *http.Request, body []byte, receivedAt time.Time) (webhook.Verification, error) {
	id, err := idHeader.Value(r.Header)
	if err != nil {
		return webhook.Verification{}, err
	}
	ts, err := timestampHeader.Value(r.Header)
	if err != nil {
		return webhook.Verification{}, err
	}
	signatures, err := signatureHeader.Values(r.Header)
	if err != nil {
		return webhook.Verification{}, err
	}
	if !validID(id) {
		return webhook.Verification{}, errMalformedID
	}
	unix, ok := parseTimestamp(ts)
	if !ok {
		return webhook.Verification{}, errMalformedTimestamp
	}
	skew := receivedAt.Sub(time.Unix(unix, 0))
	switch {
	case skew > p.tolerance:
		return webhook.Verification{}, fmt.Errorf("standard: verify: %s %s is %v before receipt, beyond the tolerance %v: %w", HeaderTimestamp, ts, skew.Round(time.Second), p.tolerance, webhook.ErrUnauthenticated)
	case skew < -p.tolerance:
		return webhook.Verification{}, fmt.Errorf("standard: verify: %s %s is %v after receipt, beyond the tolerance %v: %w", HeaderTimestamp, ts, (-skew).Round(time.Second), p.tolerance, webhook.ErrUnauthenticated)
	}

	var (
		candidates [][sha256.Size]byte
		sawV1      bool
	)
	for _, header := range signatures {
		for _, entry := range strings.Fields(header) {
			version, sig, _ := strings.Cut(entry, ",")
			if version != "v1" {
				continue
			}
			sawV1 = true
			var sum [sha256.Size]byte
			if sigcheck.DecodeBase64(sig, &sum, false) {
				candidates = append(candidates, sum)
			}
		}
	}
	switch {
	case !sawV1:
		return webhook.Verification{}, errNoV1Signature
	case len(candidates) == 0:
		return webhook.Verification{}, errMalformedSignature
	}
	for _, k := range p.keys {
		want := k.Sum([]byte(id), dot, []byte(ts), dot, body)
		for _, got := range candidates {
			if hmac.Equal(want[:], got[:]) {
				return webhook.Verification{Scheme: Scheme, KeyID: k.ID, DeliveryID: id}, nil
			}
		}
	}
	return webhook.Verification{}, errSignatureMismatch
}

// maxWebhookIDLen bounds webhook-id: it is the delivery id of the metadata
// and part of the dedupe key.
const maxWebhookIDLen = 256

// validID reports whether id can be signed unambiguously and recorded: 1
// to 256 printable ASCII characters and no '.', which the spec asks
// senders never to allow in it (with a digit-only timestamp, that makes
// id "." timestamp "." body split one way only).
func validID(id string) bool {
	if id == "" || len(id) > maxWebhookIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return false
		}
	}
	return true
}

// maxUnix bounds a timestamp so that time.Unix cannot overflow (year ~36800).
const maxUnix = 1 << 40

// parseTimestamp parses webhook-timestamp: decimal Unix seconds, digits
// only, no leading zero, so that the text signed is the one the sender
// formatted.
func parseTimestamp(ts string) (int64, bool) {
	if ts == "" || len(ts) > 13 || (ts[0] == '0' && len(ts) > 1) {
		return 0, false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n > maxUnix {
		return 0, false
	}
	return n, true
}

// dot separates the parts of the signed content.
var dot = []byte{'.'}

// Sign returns the webhook-signature value ("v1," and the standard base64
// of the HMAC-SHA256) of a delivery with webhook-id id, webhook-timestamp
// ts (whole Unix seconds) and body. secret is taken as Config.Secrets takes
// it; a "whsec_" secret whose base64 does not decode is used as raw bytes
// (check it with DecodeSecret first). It is signer.Standard; receiptctl and
// tests use it to send signed deliveries.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return signer.Standard(secret, id, ts, body)
}
