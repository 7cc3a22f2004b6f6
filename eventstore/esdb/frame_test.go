package esdb

import (
	"bytes"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
)

func FuzzFrame(f *testing.F) {
	f.Add([]byte{0x0a, 0x01, 'x'}, []byte("body"), true)
	f.Add([]byte(nil), []byte(nil), false)
	f.Add([]byte{0xff, 0x00}, []byte{}, true)
	f.Fuzz(func(t *testing.T, data, body []byte, hasBody bool) {
		if !hasBody {
			body = nil
		} else if body == nil {
			body = []byte{}
		}
		e := aggregate.Event{Data: data, Body: body}
		gotData, gotBody, ok := parseFrame(appendFrame(nil, e))
		if !ok || !bytes.Equal(gotData, data) || !bytes.Equal(gotBody, body) || (gotBody == nil) != (body == nil) {
			t.Fatalf("frame of %q, %q read back as %q, %q (%v)", data, body, gotData, gotBody, ok)
		}
		_, _, _ = parseFrame(data) // never panics
	})
}
