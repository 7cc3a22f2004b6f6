package eventcodec

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	eventsv2 "github.com/receiptd/receiptd/gen/go/receiptd/events/v2"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"
)

// TestCompressBound: a frame is written in place in a buffer of
// frameBound bytes, for bodies that compress and bodies that do not, and
// reads back byte for byte.
func TestCompressBound(t *testing.T) {
	random := make([]byte, 300<<10) // incompressible
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random)
	for _, raw := range [][]byte{
		[]byte(`{}`),
		bytes.Repeat([]byte(`{"eventType":"receipt.extracted","data":{"items":[1,2,3]}}`), 40),
		random[:1<<10], random[:64<<10], random,
	} {
		var room, size int
		frame, err := compressTo(raw, func(f []byte) ([]byte, error) {
			room, size = cap(f), len(f)
			return bytes.Clone(f), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if size > frameBound(len(raw)) || room < frameBound(len(raw)) {
			t.Errorf("%d bytes: a %d-byte frame in a buffer of %d, bound %d", len(raw), size, room, frameBound(len(raw)))
		}
		back, err := decompress(frame)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("%d bytes: read back %d bytes, %v", len(raw), len(back), err)
		}
	}
}

// TestDecimalPB: the coefficient read without a copy (up to 18 digits) is
// encoded as the copy was, on both sides of the boundary.
func TestDecimalPB(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "1656.54", "0.000001", "999999999999999999", "-999999999999999999",
		"9999999999999999.99", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "12345678901234567890.5", "1e30", "-1.5e-20"} {
		d := decimal.RequireFromString(s)
		got := decimalPB(d)
		var want *eventsv2.Decimal
		if c := d.Coefficient(); c.IsInt64() {
			want = &eventsv2.Decimal{Unscaled: c.Int64(), Exponent: d.Exponent()}
		} else {
			want = &eventsv2.Decimal{Text: c.String() + "e" + strconv.FormatInt(int64(d.Exponent()), 10)}
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
		if back, err := decimalValue(got); err != nil || !back.Equal(d) {
			t.Errorf("%s: reads back as %v, %v", s, back, err)
		}
	}
	if got := decimalPB(decimal.Decimal{}); got.GetUnscaled() != 0 || got.GetText() != "" {
		t.Errorf("the zero Decimal: %v", got)
	}
}
