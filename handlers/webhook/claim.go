package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
)

// maxClaimLen bounds Normalized.Claim: it is part of a stream id.
const maxClaimLen = 256

// ClaimStream returns the stream that holds the claim on a signature of a
// source: claim-{source}.{claim}.
func ClaimStream(source, claim string) string {
	return aggregate.StreamID(aggregate.CategoryClaim, source, claim)
}

// SignatureClaimed is the data of aggregate.TypeSignatureClaimed, as JSON:
// the first delivery recorded under a signature that does not cover its
// body bound the signature to its stream and its body.
type SignatureClaimed struct {
	Source string `json:"source"`
	// Claim is Normalized.Claim: what the signature covers.
	Claim string `json:"claim"`
	// Stream is the stream of the fact the claiming delivery went to.
	Stream string `json:"stream"`
	// BodySHA256 is the hex SHA-256 of the claiming delivery's raw body.
	BodySHA256 string `json:"body_sha256"`
	// EventID is the id of the fact's event (EventID).
	EventID string `json:"event_id"`
}

// Errors of claiming, wrapping the sentinels the outcome table knows.
var (
	// errClaimedElsewhere: the signature was claimed by a delivery to
	// another stream. The signature holds, but not for this body: as
	// unauthenticated as a bad signature (401).
	errClaimedElsewhere = fmt.Errorf("webhook: claim: the signature was already used for another stream: %w", ErrUnauthenticated)
	// errClaimedByAnotherBody: the signature was claimed by another body
	// for the same stream (409, like a Reject slot).
	errClaimedByAnotherBody = fmt.Errorf("webhook: claim: the signature was already used for another body of the same stream: %w", aggregate.ErrConflict)
)

// claim binds the signature a delivery was verified with (n.Claim) to the
// delivery's stream and body, durably and for every node sharing the log,
// before the fact is decided: it appends a TypeSignatureClaimed event to
// ClaimStream with expected revision "no stream". If the stream exists the
// claim is already taken, and it reads who holds it: the same stream and
// body (a retry, or a delivery whose fact was not appended before a crash
// or a timeout) may go on; another stream is errClaimedElsewhere, another
// body errClaimedByAnotherBody. The claim is durable before the fact is
// appended, so no order of crashes lets two bodies through one signature.
func (h *Handler) claim(ctx context.Context, n Normalized, meta aggregate.Metadata) error {
	stream := ClaimStream(meta.Source, n.Claim)
	id := EventID(meta.Source, n.Fact.DedupeKey, meta.BodySHA256)
	data, err := json.Marshal(SignatureClaimed{
		Source: meta.Source, Claim: n.Claim, Stream: n.Fact.Stream, BodySHA256: meta.BodySHA256, EventID: id,
	})
	if err != nil {
		return fmt.Errorf("webhook: claim %q: encode: %w", stream, err)
	}
	meta.DedupeKey, meta.SlotKey, meta.Correction = "claim:"+n.Claim, "", false
	meta.CorrelationID, meta.CausationID = id, id
	md, err := encodeJSON(meta)
	if err != nil {
		return fmt.Errorf("webhook: claim %q: encode metadata: %w", stream, err)
	}
	ev := aggregate.Event{
		ID:       EventID(meta.Source, meta.DedupeKey, meta.BodySHA256),
		Type:     aggregate.TypeSignatureClaimed,
		Data:     data,
		Metadata: md,
	}
	_, err = h.store.Append(ctx, stream, eventstore.NoStream, ev)
	if err == nil {
		return nil
	}
	if !errors.Is(err, eventstore.ErrWrongRevision) {
		return fmt.Errorf("webhook: claim %q: %w", stream, err)
	}
	held, err := h.store.ReadStream(ctx, stream, 0, 1)
	if err != nil {
		return fmt.Errorf("webhook: claim %q: read the claim held: %w", stream, err)
	}
	if len(held) == 0 || held[0].Type != aggregate.TypeSignatureClaimed {
		return fmt.Errorf("webhook: claim %q: the stream exists but holds no claim: %w", stream, aggregate.ErrBadEvent)
	}
	var c SignatureClaimed
	if err := json.Unmarshal(held[0].Data, &c); err != nil {
		return fmt.Errorf("webhook: claim %q: decode the claim held: %w: %w", stream, aggregate.ErrBadEvent, err)
	}
	switch {
	case c.Stream != n.Fact.Stream:
		return fmt.Errorf("%w (claimed at %v)", errClaimedElsewhere, held[0].Position)
	case c.BodySHA256 != meta.BodySHA256:
		return fmt.Errorf("%w (claimed at %v)", errClaimedByAnotherBody, held[0].Position)
	}
	return nil
}

// checkClaim refuses a claim that could not name a stream.
func checkClaim(claim string) error {
	if len(claim) > maxClaimLen {
		return fmt.Errorf("claim longer than %d bytes", maxClaimLen)
	}
	for i := 0; i < len(claim); i++ {
		if c := claim[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("claim %.64q holds a byte that is not printable ASCII", claim)
		}
	}
	return nil
}
