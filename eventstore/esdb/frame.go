package esdb

import (
	"encoding/json"

	"github.com/receiptd/receiptd/aggregate"
	"google.golang.org/protobuf/encoding/protowire"
)

// An event whose Body is set, or whose Data is not JSON (a v2 event's
// protobuf payload), is stored with content type application/octet-stream
// and, as its data, a frame of Data and Body in protobuf wire format:
//
//	field 1 (bytes): Data
//	field 2 (bytes): Body, present when Body is not nil
//
// so that the server, which holds one data field per event, keeps the two
// apart byte for byte. Metadata is stored as it is. Every other event (the
// v1 JSON events) is stored as before: content type application/json, its
// Data as the event's data. An event read with content type
// application/octet-stream is unframed; one whose data is not a frame (not
// written by this package) is returned as it is, without a Body.
const (
	contentTypeFramed = "application/octet-stream"
	frameData         = 1
	frameBody         = 2
)

// framed reports whether e is stored framed.
func framed(e aggregate.Event) bool {
	return e.Body != nil || len(e.Data) > 0 && !json.Valid(e.Data)
}

// appendFrame appends the frame of e's Data and Body to dst.
func appendFrame(dst []byte, e aggregate.Event) []byte {
	dst = protowire.AppendTag(dst, frameData, protowire.BytesType)
	dst = protowire.AppendBytes(dst, e.Data)
	if e.Body != nil {
		dst = protowire.AppendTag(dst, frameBody, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.Body)
	}
	return dst
}

// parseFrame splits a frame into Data and Body (nil when the frame has
// none). Fields it does not know are skipped.
func parseFrame(b []byte) (data, body []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != frameData && num != frameBody) {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, nil, false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		v = v[:len(v):len(v)]
		if num == frameData {
			data = v
		} else {
			body = v
		}
	}
	if len(data) == 0 {
		data = nil
	}
	return data, body, true
}
