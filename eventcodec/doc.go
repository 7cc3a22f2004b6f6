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
// # Sealed events
//
// EncodeSealed seals an event about a person under that person's data key
// (package privacy; Sealing names the key and the personal attributes):
// Body becomes the zstd frame in a privacy box, and the personal fields of
// the payload (a user.enrolled's email, an entity event's personal
// attributes) move into the payload's sealed field, a Personal message in
// a box. Everything else — ids, amounts, points, CO2e, statuses, stages,
// the metadata — stays in the clear, byte for byte as Encode writes it.
//
// The decoders read a sealed event without any key: they return the clear
// fields, leave the sealed ones empty and pass the box in the struct's
// Sealed field, so every read model, audit and decision works the same on
// a log whose keys were destroyed. OpenPersonal and OpenRawBody open the
// boxes with a privacy.Opener (a Keyring); when the key was destroyed they
// answer forgotten=true with a nil error: a forgotten subject is shown as
// forgotten, never as a failure. RawBody refuses a sealed body
// (ErrSealed); SealedKeys names the keys an event is sealed under.
//
// # Caveats
//
// Decoding errors wrap aggregate.ErrBadEvent. A decoder given an event of
// another kind fails the same way.
//
// The v2 bytes are a storage format: fields of the messages are only ever
// added, and the golden test (testdata/golden) pins the bytes of each type.
//
// This package imports aggregate, privacy, the generated events protos,
// protobuf, klauspost/compress/zstd and the decimal library; never a
// store, a projection or a handler.
package eventcodec
