package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event is a domain event as it is appended to and read from a stream: the
// envelope every store adapter carries. Package eventcodec encodes and
// decodes Data, Metadata and Body; a store treats all three as opaque bytes.
//
// A v1 event (the *.v1 types) has JSON Data, with the provider's raw body
// embedded as data.raw, JSON Metadata and no Body. A v2 event has a
// protobuf payload in Data, binary metadata in Metadata and the provider's
// raw body, zstd-compressed, in Body (see proto/receiptd/events/v2).
type Event struct {
	// ID is deterministic: a UUIDv5 of source, dedupe key and body hash.
	ID       string
	Type     string
	Data     []byte
	Metadata []byte
	// Body is opaque bytes kept apart from Data and Metadata, byte for
	// byte: for a v2 event the zstd frame of the provider's raw body; nil
	// for a v1 event. A store returns what was appended (a nil or empty
	// Body may come back as either), and a reader that only needs Data or
	// Metadata need not look at it.
	Body []byte
}

// Event type names are a contract: dotted, past tense, versioned. They are
// never renamed; a new version is added instead.
const (
	// TypeReceiptStageRecorded: a receipt reached a pipeline stage (any of
	// UPLOADED … SCORED, AWARDED or FAILED). Data: StageRecorded.
	TypeReceiptStageRecorded = "receipt.stage_recorded.v1"
	// TypeUserEnrolled: a user enrolled with a provider. Data: UserEnrolled.
	TypeUserEnrolled = "user.enrolled.v1"
	// TypeDeliveryQuarantined: a verified delivery the decoder could not
	// normalize. Data: Quarantined. Stream: quarantine-{source}.
	TypeDeliveryQuarantined = "delivery.quarantined.v1"
	// TypeUserPointsCredited: points credited to a user outside a receipt
	// (Reward's balance.credit_points_issued). Data: PointsCredited.
	// Stream: user-{source}.{user}.
	TypeUserPointsCredited = "user.points_credited.v1"
	// TypeEntityEventRecorded: a provider's fact about an entity other than
	// a receipt — an offer, an account, an order, a customer, a redemption,
	// a user's trigger event. Data: EntityEventRecorded. Stream:
	// {category}-{source}.{id}.
	TypeEntityEventRecorded = "entity.event_recorded.v1"
	// TypeSignatureClaimed: the first delivery under a signature that does
	// not cover its body (Reusely's signed object_id and timestamp) claimed
	// that signature for one stream and one body. Data:
	// webhook.SignatureClaimed (JSON). Stream: claim-{source}.{claim}, which
	// holds this one event, appended with expected revision "no stream". It
	// describes no entity: no read model applies it.
	TypeSignatureClaimed = "signature.claimed.v1"
	// TypeSubjectForgotten: a person's data keys were destroyed (package
	// privacy; PrivacyService.ForgetSubject), so every value sealed under
	// them is gone for good. Data: SubjectForgotten (JSON). Stream:
	// subject-{source}.{subject}. An audit record: no read model applies it
	// (the sealed values it erases were never in them in the clear).
	TypeSubjectForgotten = "subject.forgotten.v1"
)

// SubjectForgotten is the data of TypeSubjectForgotten.
type SubjectForgotten struct {
	// Source is the user id namespace of the subject.
	Source string `json:"source"`
	// SubjectID is the subject's id as receiptd stores it: a user,
	// customer or account id, or a pseudonym (never an e-mail address).
	SubjectID string `json:"subject_id"`
	// KeyIDs are the destroyed data keys' ids (random: they name no one).
	KeyIDs []string `json:"key_ids"`
	// ForgottenAt is when the keys were destroyed.
	ForgottenAt time.Time `json:"forgotten_at"`
}

// The v2 event types: the same facts as their v1 namesakes, with a binary
// (protobuf) payload in Data that leaves out the raw body, binary metadata,
// and the raw body byte for byte, compressed, in Event.Body. eventcodec
// writes them and reads both versions; eventcodec.Kind maps either name to
// the v1 constant, so a reader switches on one name per fact.
const (
	// TypeReceiptStageRecordedV2: TypeReceiptStageRecorded, encoded v2.
	TypeReceiptStageRecordedV2 = "receipt.stage_recorded.v2"
	// TypeUserEnrolledV2: TypeUserEnrolled, encoded v2.
	TypeUserEnrolledV2 = "user.enrolled.v2"
	// TypeDeliveryQuarantinedV2: TypeDeliveryQuarantined, encoded v2.
	TypeDeliveryQuarantinedV2 = "delivery.quarantined.v2"
	// TypeUserPointsCreditedV2: TypeUserPointsCredited, encoded v2.
	TypeUserPointsCreditedV2 = "user.points_credited.v2"
	// TypeEntityEventRecordedV2: TypeEntityEventRecorded, encoded v2.
	TypeEntityEventRecordedV2 = "entity.event_recorded.v2"
)

// Stream categories: the part of a stream id before the first "-".
const (
	CategoryReceipt  = "receipt"
	CategoryUser     = "user"
	CategoryOffer    = "offer"
	CategoryAccount  = "account"
	CategoryOrder    = "order"
	CategoryCustomer = "customer"
	// CategoryRedemption: a reward code redeemed at a point of sale.
	CategoryRedemption = "redemption"
	// CategoryNotice: what a provider tells about the integration itself
	// (RETM's error webhook after failed deliveries), per provider endpoint.
	CategoryNotice = "notice"
	// CategoryQuestion: a synchronous question a provider asked (RETM's
	// Check Reward, Promotional Coupon) and the answer given.
	CategoryQuestion   = "question"
	CategoryQuarantine = "quarantine"
	// CategoryClaim: a signature's claim (TypeSignatureClaimed), one stream
	// per claimed signature. Not an entity: no provider fact may go there.
	CategoryClaim = "claim"
	// CategorySubject: a person's privacy record (TypeSubjectForgotten),
	// one stream per subject. Not an entity.
	CategorySubject = "subject"
)

// StreamID returns "{category}-{source}.{id}". The source is the configured
// source name, so ids from two providers never collide.
func StreamID(category, source, id string) string {
	return category + "-" + source + "." + id
}

// QuarantineStream returns the quarantine stream of a source.
func QuarantineStream(source string) string { return CategoryQuarantine + "-" + source }

// ParseStreamID splits a stream id into category, source and id. The id may
// itself contain "-" and "."; the source may not contain ".".
func ParseStreamID(stream string) (category, source, id string, err error) {
	category, rest, ok := strings.Cut(stream, "-")
	if !ok || category == "" {
		return "", "", "", fmt.Errorf("aggregate: parse stream id %q: %w", stream, ErrBadStreamID)
	}
	source, id, _ = strings.Cut(rest, ".")
	if source == "" {
		return "", "", "", fmt.Errorf("aggregate: parse stream id %q: %w", stream, ErrBadStreamID)
	}
	return category, source, id, nil
}

// Metadata is stored with every event: as JSON in a v1 event (these field
// names), in binary in a v2 one (see eventcodec).
type Metadata struct {
	Source            string    `json:"source"`
	ProviderEventType string    `json:"provider_event_type,omitempty"`
	DeliveryID        string    `json:"delivery_id,omitempty"`
	ReceivedAt        time.Time `json:"received_at"`
	Scheme            string    `json:"scheme"`
	KeyID             string    `json:"key_id,omitempty"`
	BodySHA256        string    `json:"body_sha256"`
	// DedupeKey identifies an exact re-delivery within the stream.
	DedupeKey string `json:"dedupe_key"`
	// SlotKey identifies what a delivery states a fact about (for a receipt,
	// its stage): two events with one slot and different dedupe keys are a
	// correction.
	SlotKey string `json:"slot_key,omitempty"`
	// Correction is set when Decide found the slot already holding a
	// different fact (see Decision.Correction).
	Correction    bool   `json:"correction,omitempty"`
	CorrelationID string `json:"$correlationId,omitempty"`
	CausationID   string `json:"$causationId,omitempty"`
}

// DecodeMetadata parses the JSON metadata of a v1 event. Readers of the log
// use eventcodec.Metadata, which reads both versions.
func DecodeMetadata(e Event) (Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(e.Metadata, &m); err != nil {
		return Metadata{}, fmt.Errorf("aggregate: decode metadata of %s event %s: %w", e.Type, e.ID, err)
	}
	return m, nil
}

// Errors of the domain. Wrapped with the operation's name; match with errors.Is.
var (
	// ErrUnknownEvent: a verified delivery of an event type the decoder does
	// not know. The delivery is quarantined, not dropped.
	ErrUnknownEvent = errors.New("aggregate: unknown event type")
	// ErrUnnormalizable: a verified, well-formed JSON delivery whose shape the
	// decoder cannot normalize (a required field missing or of the wrong
	// type). The delivery is quarantined, not dropped.
	ErrUnnormalizable = errors.New("aggregate: delivery cannot be normalized")
	// ErrConflict: the delivery contradicts a fact its provider already
	// stated under the same identity, and the provider's policy is to reject
	// rather than record a correction (Reusely's signed pair).
	ErrConflict = errors.New("aggregate: conflicting delivery")
	// ErrBadStreamID: a stream id not of the form category-source.id.
	ErrBadStreamID = errors.New("aggregate: malformed stream id")
	// ErrBadEvent: a stored event whose data cannot be decoded.
	ErrBadEvent = errors.New("aggregate: undecodable event")
)
