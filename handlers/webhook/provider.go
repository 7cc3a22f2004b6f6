package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

// Provider is one configured source's verification and normalization: the
// part of ingest that differs between providers. A Provider knows nothing of
// HTTP statuses, stores or metrics; the Handler owns those.
//
// Implementations live in sibling subpackages (handlers/webhook/reewild, …),
// one per provider scheme, and must be safe for concurrent use.
type Provider interface {
	// Source is the configured source name (see CheckSourceName). It is the
	// {source} of POST /webhooks/{source} and the {source} of every stream
	// the provider's facts go to.
	Source() string

	// Kind is the provider scheme ("reewild", "reusely", …).
	Kind() string

	// Verify authenticates r on its raw body, before any parsing. It may read
	// r's headers, URL and remote address but never r.Body (body holds it,
	// read once by the Handler). receivedAt is when the delivery arrived, for
	// schemes with a timestamp tolerance.
	//
	// A failure returns an error wrapping ErrUnauthenticated. Its message is
	// logged, never sent to the client, and must not contain a secret, a
	// signature or a token.
	Verify(r *http.Request, body []byte, receivedAt time.Time) (Verification, error)

	// Normalize turns a verified delivery into a fact for the aggregate.
	//
	// An unknown event type returns an error wrapping
	// aggregate.ErrUnknownEvent; a JSON body whose shape cannot be normalized
	// (a required field missing or of the wrong type) one wrapping
	// aggregate.ErrUnnormalizable. The Handler quarantines both (and any
	// other error) instead of dropping the delivery; on error Normalize still
	// sets Normalized.EventType when it could read one, for the quarantine
	// record.
	//
	// d.Body has not been checked to be JSON: Normalize must fail on a body
	// that is not (decoding it with encoding/json does), and the Handler
	// then answers 400 instead of quarantining. Checking once, while
	// decoding, saves a full scan of every body.
	//
	// d.Body is only valid until the Handler answers: the returned fact may
	// refer to it (as its raw body), because the Handler encodes the fact
	// before it reuses the buffer. Normalize must not keep it otherwise.
	Normalize(d Delivery) (Normalized, error)
}

// Verification says how a delivery was authenticated. It is recorded in the
// event's metadata.
type Verification struct {
	// Scheme names the check that passed ("hmac-sha256", "bearer", …).
	Scheme string
	// KeyID identifies which configured secret or key matched, never the
	// secret itself: for a shared secret, "sha256:" and the first 8 hex
	// digits of the secret's SHA-256 (see KeyID).
	KeyID string
	// DeliveryID is the delivery's own id where the scheme carries one in
	// its headers (Standard Webhooks' webhook-id); empty otherwise.
	DeliveryID string
}

// Delivery is a verified delivery, as Normalize receives it.
type Delivery struct {
	// Body is the raw request body, exactly as received and verified.
	Body []byte
	// BodySHA256 is the lower-case hex SHA-256 of Body, computed once by the
	// Handler.
	BodySHA256 string
	// ReceivedAt is when the Handler received the delivery (UTC).
	ReceivedAt   time.Time
	Verification Verification
}

// Normalized is what Normalize made of a delivery.
type Normalized struct {
	// Fact is the delivery as the aggregate decides on it. Its stream must
	// belong to the provider's source and its dedupe key must not be empty.
	Fact aggregate.Fact
	// EventType is the provider's event type exactly as sent (which may be
	// an alias of the canonical name), recorded in the metadata.
	EventType string
	// DeliveryID is a delivery id carried in the body (Reward's envelope id),
	// if any. It takes precedence over Verification.DeliveryID.
	DeliveryID string
	// Reply, if not nil, is the answer the provider expects once the fact is
	// recorded (or found to be a duplicate), instead of the usual 200: for
	// deliveries that are synchronous questions (RETM's Check Reward and
	// Promotional Coupon). It is sent only after the append is durable; any
	// failure before that is answered as for any other delivery.
	Reply *Reply
	// Claim, if not empty, is what the delivery's signature covers when it
	// does not cover the whole body (Reusely signs object_id and timestamp
	// only), spelled the same way for every body signed alike: 1 to 256
	// printable ASCII bytes, no space. The Handler claims it in the log
	// before deciding the fact (see SignatureClaimed): the first delivery
	// binds the signature to its fact's stream and its body, durably and
	// for every node on the log; a later one under the same claim is
	// refused as unauthenticated (401) for another stream, as a conflict
	// (409) for another body of the same stream, and goes on to be decided
	// (a duplicate, usually) for the same body.
	Claim string
}

// Subject names the person a delivery is about, for sealing its personal
// data under that person's data key (package privacy). The zero Subject
// names no one: the delivery is stored in the clear.
type Subject struct {
	// Namespace is the user id namespace the person is known in: the
	// source itself, or the source whose user ids it shares (Reward's
	// user_namespace), so that one forget covers both.
	Namespace string
	// ID is the person's id as the provider names them.
	ID string
	// Pseudonymous, when not empty, says ID is itself personal data (an
	// e-mail address) of this kind ("email"): the subject is then named by
	// the keyring's pseudonym of it (privacy.Keyring.Pseudonym), which is
	// what the log and the key store hold.
	Pseudonymous string
}

// IsZero reports whether s names no one.
func (s Subject) IsZero() bool { return s.ID == "" }

// Personal is what a delivery holds of a person: whose it is, and which
// of its normalized fields are personal. Its raw body is always sealed
// when it has a subject; of the normalized payload, a user.enrolled's
// email and the entity attributes named here are; the rest (ids, amounts,
// points, statuses) stays in the clear.
type Personal struct {
	Subject Subject
	// Attributes are the names of the fact's EntityEventRecorded
	// attributes that are personal data.
	Attributes []string
}

// PersonalData is implemented by a Provider whose deliveries carry
// personal data. With privacy configured (Options.Keys), the Handler asks
// it about every delivery it records.
type PersonalData interface {
	// Personal says whose delivery d is. n is what Normalize made of it;
	// for a delivery Normalize could not map (it is quarantined) n.Fact is
	// zero, and Personal reads the subject from the body as far as it can
	// (a zero Subject then stores the delivery in the clear). It must not
	// fail and must be cheap: it runs on every delivery.
	Personal(d Delivery, n Normalized) Personal
}

// Reply is a provider-specific answer to a recorded delivery.
type Reply struct {
	// Status is the HTTP status to answer with.
	Status int
	// Body is the JSON body to answer with.
	Body []byte
}

// ErrUnauthenticated: a delivery failed its provider's verification. The
// Handler answers 401 with no detail and stores nothing.
var ErrUnauthenticated = errors.New("webhook: delivery not authenticated")

// maxSourceName bounds a source name: it appears in URLs, stream ids and
// metric labels.
const maxSourceName = 64

// CheckSourceName reports whether name can name a source: 1 to 64 ASCII
// letters, digits, '_' or '-', starting with a letter or digit. A source name
// is part of URLs (/webhooks/{source}), stream ids ({category}-{source}.{id},
// so never a '.') and metric labels.
func CheckSourceName(name string) error {
	if name == "" {
		return errors.New("webhook: source name is empty")
	}
	if len(name) > maxSourceName {
		return fmt.Errorf("webhook: source name %.64q…: longer than %d bytes", name, maxSourceName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("webhook: source name %q: only letters, digits, '_' and '-' (not first) are allowed", name)
		}
	}
	return nil
}

// KeyID returns the key id recorded for a shared secret: "sha256:" and the
// first 8 hex digits of the secret's SHA-256. It tells rotated secrets apart
// in the metadata without revealing them.
func KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "sha256:" + hex.EncodeToString(sum[:4])
}
