// Package eventcodec encodes receiptd's log events and decodes them, in
// either version. It is the only code that knows how an event's Data,
// Metadata and Body are laid out; stores treat them as opaque bytes and
// every reader of the log (projections, the webhook handler's decide and
// re-process paths, the console, the quarantine API) goes through it.
//
// # Basics
//
// Encode makes a v2 event from a normalized fact (aggregate.Fact), its
// metadata and the provider's raw body:
//
//   - Data: the fact as a protobuf message of proto/receiptd/events/v2
//     (StageRecorded, UserEnrolled, …), without the raw body. Decimals are
//     exact (unscaled integer and exponent), times keep their UTC offset,
//     the body hash is 32 raw bytes.
//   - Metadata: a protobuf Metadata message without what the event already
//     holds: the correlation and causation ids are left out when they are
//     the event's id, and the dedupe key's body-hash suffix when it is the
//     body's hash; both are restored on decode.
//   - Body: the raw body as one zstd frame, byte for byte, so that a stored
//     delivery can be verified against its signature again.
//
// The decoders (StageRecorded, UserEnrolled, Quarantined, PointsCredited,
// EntityEventRecorded, Metadata) read both the v2 events and the v1 JSON
// events written before them, which stay readable forever. They never touch
// Body and never fill the structs' Raw fields: RawBody returns the raw body
// (v2: decompressed, exactly as received; v1: data.raw, the compacted JSON
// v1 stored). Kind maps a v1 or v2 type name to the v1 constant, so that a
// reader switches on one name per fact:
//
//	switch eventcodec.Kind(e.Type) {
//	case aggregate.TypeReceiptStageRecorded:
//		f, err := eventcodec.StageRecorded(e.Event)
//		...
//	}
//
// # Caveats
//
// Decoding errors wrap aggregate.ErrBadEvent. A decoder given an event of
// another kind fails the same way.
//
// The v2 bytes are a storage format: fields of the messages are only ever
// added, and the golden test (testdata/golden) pins the bytes of each type.
//
// This package imports aggregate, the generated events protos, protobuf,
// klauspost/compress/zstd and the decimal library; never a store, a
// projection or a handler.
package eventcodec
