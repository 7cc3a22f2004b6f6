package feed

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/receiptd/receiptd/aggregate"
)

// storedReceiptEvent is a receipt.completed.v1 as the read models store
// it, with a view like the bench's.
func storedReceiptEvent() Event {
	at := time.Date(2026, 3, 1, 9, 0, 0, 7_000_000, time.UTC)
	occurred := time.Date(2026, 3, 1, 15, 52, 26, 0, time.UTC)
	return Event{
		ID: EventID(KindReceiptCompleted, "reewild", "rcpt-00024741-831b"), Kind: KindReceiptCompleted, Source: "reewild",
		UserIDs: []string{"user-001415"}, ReceiptID: "rcpt-00024741-831b", UserID: "user-001415",
		Anomalies:  []aggregate.Anomaly{{Kind: "conflicting_terminal_events", Detail: "AWARDED after FAILED"}},
		OccurredAt: &occurred, RecordedAt: at, ViewOf: ViewReceipt,
		View: []byte(`{"receipt_id":"rcpt-00024741-831b","source":"reewild","user_id":"user-001415","status":"COMPLETED","points":"213.38","bonus_points":"0","health_points":"49.3","co2e":"3.22975","green_products":8,"transaction_id":"tx-rcpt-00024741-831b","stages":[{"stage":"UPLOADED","reported":false},{"stage":"EXTRACTED","reported":false},{"stage":"ENRICHED","reported":false},{"stage":"VALIDATED","reported":false},{"stage":"SCORED","reported":false},{"stage":"AWARDED","reported":true,"occurred_at":"2026-03-01T15:52:26Z","recorded_at":"2026-03-01T09:00:00.007Z"},{"stage":"FAILED","reported":false}],"user_ids":["user-001415"],"snapshot":{"available_points":"213.38","lifetime_points":"213.38","num_transactions":24741}}`),
	}
}

// TestStoredForms: Marshal stores the compressed form; Canonical gives
// the plain form (schema 7's stored bytes), which Unmarshal still reads.
func TestStoredForms(t *testing.T) {
	e := storedReceiptEvent()
	stored, _ := Marshal(e)
	plain := appendPlain(nil, &e)
	if stored[0] != formatS2 || plain[0] != formatPlain {
		t.Fatalf("formats %d, %d", stored[0], plain[0])
	}
	if len(stored) > MarshalSize(&e) || len(plain) > plainSize(&e) {
		t.Fatalf("sizes %d > %d or %d > %d", len(stored), MarshalSize(&e), len(plain), plainSize(&e))
	}
	if 2*len(stored) > len(plain) {
		t.Errorf("stored %d bytes for a plain form of %d: the dictionary should at least halve it", len(stored), len(plain))
	}
	t.Logf("plain %d bytes, stored %d", len(plain), len(stored))
	for _, b := range [][]byte{stored, plain} {
		canon, err := Canonical([]byte("prefix"), b)
		if err != nil || !bytes.Equal(canon, append([]byte("prefix"), plain...)) {
			t.Fatalf("Canonical of format %d: %v\n%q", b[0], err, canon)
		}
		got, err := Unmarshal(9, b)
		if err != nil {
			t.Fatalf("Unmarshal of format %d: %v", b[0], err)
		}
		if again := appendPlain(nil, &got); !bytes.Equal(again, plain) || got.Position != 9 {
			t.Fatalf("Unmarshal of format %d gave %+v", b[0], got)
		}
	}
	// Into a buffer with room: in place.
	buf := make([]byte, 3, 3+MarshalSize(&e))
	if out := AppendMarshal(buf, &e); &out[0] != &buf[0] || !bytes.Equal(out[3:], stored) {
		t.Error("AppendMarshal with room did not append in place")
	}
}

// goldenS2 is storedReceiptEvent in formatS2 as written when the format
// was made (2026-12-07). Events in that form are read with viewDictText:
// if it changed, they would no longer decode, and this test says so.
const goldenS2 = "02800794246576745f656364356661663134336366353163633064343066386163613162" +
	"6461333862140dc532950b00070dbca812726370742d30303032343734312d383331620b" +
	"757365722d3030313431350000000772656365697074012e180074011b636f6e666c6963" +
	"74696e675f7465726d696e616c5f6576656e7473144d2980206166746572204641494c45" +
	"4401f482a39a0d00a080a09a0dc09fab03c3057b220d993d5e328900926b0109a8827101" +
	"143231332e33389676010c34392e33397918332e32323937354a7f0100386a810542c900" +
	"9a8e05427f075641054627004ef40442260056a7044227004a5a044224002de4329c037a" +
	"0d041c31353a35323a32361500200037ea0d044d178613045519461804151b811d150006" +
	"1832343734317d7d"

func TestTheDictionaryNeverChanges(t *testing.T) {
	b, err := hex.DecodeString(goldenS2)
	if err != nil {
		t.Fatal(err)
	}
	e := storedReceiptEvent()
	got, err := Unmarshal(1, b)
	if err != nil || !bytes.Equal(appendPlain(nil, &got), appendPlain(nil, &e)) {
		now, _ := Marshal(e)
		t.Fatalf("the stored bytes of 2026-12-07 no longer decode to the event (%v); viewDictText changed?\nnow: %x", err, now)
	}
}

func TestCorruptStoredEvents(t *testing.T) {
	e := storedReceiptEvent()
	stored, _ := Marshal(e)
	huge := append([]byte{formatS2}, s2.Encode(nil, make([]byte, 16))...)
	huge = append(huge[:1], append([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, huge[2:]...)...) // a block claiming 32 GiB
	for name, b := range map[string][]byte{
		"empty":        nil,
		"format 3":     append([]byte{3}, stored[1:]...),
		"truncated":    stored[:len(stored)/2],
		"bit flipped":  append(append([]byte(nil), stored[:20]...), append([]byte{stored[20] ^ 0x40}, stored[21:]...)...),
		"huge":         huge,
		"plain broken": appendPlain(nil, &e)[:40],
	} {
		if _, err := Unmarshal(1, b); err == nil {
			// A flipped bit inside a literal can still decode: then
			// the fields must not.
			if name != "bit flipped" {
				t.Errorf("%s: decoded", name)
			}
		} else if !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %v, not ErrBadEvent", name, err)
		}
	}
}

// BenchmarkMarshal: the stored form of a receipt event (the bulk build's
// workers encode one per feed event).
//
//	go test -run '^$' -bench 'Marshal' -benchmem ./feed/
func BenchmarkMarshal(b *testing.B) {
	e := storedReceiptEvent()
	buf := make([]byte, 0, MarshalSize(&e))
	b.Run("s2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendMarshal(buf[:0], &e)
		}
		b.ReportMetric(float64(len(buf)), "stored-bytes")
	})
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendPlain(buf[:0], &e)
		}
		b.ReportMetric(float64(len(buf)), "stored-bytes")
	})
}

// BenchmarkUnmarshal: decoding a stored event (a subscriber's read), and
// its canonical form (a digest's).
func BenchmarkUnmarshal(b *testing.B) {
	e := storedReceiptEvent()
	stored, _ := Marshal(e)
	plain := appendPlain(nil, &e)
	for _, c := range []struct {
		name string
		v    []byte
	}{{"s2", stored}, {"plain", plain}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Unmarshal(1, c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("canonical/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				out, _ = Canonical(out[:0], c.v)
			}
		})
	}
}
