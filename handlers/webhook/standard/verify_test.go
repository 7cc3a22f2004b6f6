package standard_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

func TestNew(t *testing.T) {
	ok := func(cfg standard.Config) standard.Config {
		cfg.Source = "storefront"
		if cfg.Secrets == nil {
			cfg.Secrets = [][]byte{testSecret}
		}
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  standard.Config
		ok   bool
	}{
		{"defaults", ok(standard.Config{}), true},
		{"rotation", ok(standard.Config{Secrets: [][]byte{testSecret, otherSecret}}), true},
		{"raw key", ok(standard.Config{Secrets: [][]byte{testKey}}), true},
		{"unpadded whsec", ok(standard.Config{Secrets: [][]byte{[]byte("whsec_" + base64.RawStdEncoding.EncodeToString([]byte("k1")))}}), true},
		{"everything set", ok(standard.Config{Tolerance: time.Minute, Category: "order_v2", EntityField: "id", StatusField: "data.object.state"}), true},
		{"user category", ok(standard.Config{Category: "user"}), true},

		{"no secrets", standard.Config{Source: "storefront"}, false},
		{"empty secret", ok(standard.Config{Secrets: [][]byte{testSecret, {}}}), false},
		{"whsec_ alone", ok(standard.Config{Secrets: [][]byte{[]byte("whsec_")}}), false},
		{"whsec_ not base64", ok(standard.Config{Secrets: [][]byte{[]byte("whsec_not*base64")}}), false},
		{"whsec_ url alphabet", ok(standard.Config{Secrets: [][]byte{[]byte("whsec_" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}))}}), false},
		{"no source", standard.Config{Secrets: [][]byte{testSecret}}, false},
		{"negative tolerance", ok(standard.Config{Tolerance: -time.Second}), false},
		{"category upper case", ok(standard.Config{Category: "Order"}), false},
		{"category with a dash", ok(standard.Config{Category: "sales-order"}), false},
		{"category with a dot", ok(standard.Config{Category: "sales.order"}), false},
		{"category starting with a digit", ok(standard.Config{Category: "1order"}), false},
		{"category too long", ok(standard.Config{Category: strings.Repeat("o", 33)}), false},
		{"receipt category", ok(standard.Config{Category: "receipt"}), false},
		{"quarantine category", ok(standard.Config{Category: "quarantine"}), false},
		{"entity field with an empty key", ok(standard.Config{EntityField: "data..id"}), false},
		{"entity field starting with a dot", ok(standard.Config{EntityField: ".id"}), false},
		{"status field too deep", ok(standard.Config{StatusField: strings.Repeat("a.", 8) + "status"}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := standard.New(tc.cfg)
			webhooktest.CheckNew(t, p, err, tc.ok, testSource, standard.Kind, len("whsec_")+1, tc.cfg.Secrets...)
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	k, err := standard.DecodeSecret(testSecret)
	if err != nil || !bytes.Equal(k, testKey) {
		t.Fatalf("DecodeSecret(whsec) = %q, %v", k, err)
	}
	k, err = standard.DecodeSecret(testKey)
	if err != nil || !bytes.Equal(k, testKey) {
		t.Fatalf("DecodeSecret(raw) = %q, %v", k, err)
	}
	k[0] ^= 0xff
	if testKey[0] == k[0] {
		t.Fatal("DecodeSecret does not copy a raw key")
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!!"} {
		if _, err := standard.DecodeSecret([]byte(bad)); err == nil {
			t.Fatalf("DecodeSecret(%q) succeeded", bad)
		}
	}
}

// TestSpecTestVector: the signature the spec's reference implementations
// publish is what Sign makes and what Verify accepts.
func TestSpecTestVector(t *testing.T) {
	ts := time.Unix(vectorTimestamp, 0)
	if got := standard.Sign([]byte(vectorSecret), vectorID, ts, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}
	key, err := standard.DecodeSecret([]byte(vectorSecret))
	if err != nil {
		t.Fatal(err)
	}
	if got := standard.Sign(key, vectorID, ts, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign with the decoded key = %s, want %s", got, vectorSignature)
	}
	p := newProvider(t, []byte(vectorSecret))
	h := headers{
		id:        []string{vectorID},
		timestamp: []string{strconv.Itoa(vectorTimestamp)},
		signature: []string{vectorSignature},
	}
	v, err := p.Verify(requestWith([]byte(vectorBody), h), []byte(vectorBody), ts.Add(time.Second))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := webhook.Verification{Scheme: standard.Scheme, KeyID: webhook.KeyID(key), DeliveryID: vectorID}
	if v != want {
		t.Fatalf("Verify = %+v, want %+v", v, want)
	}
}

func TestVerify(t *testing.T) {
	body := loadExample(t, "order.created")
	good := signed(testSecret, msgID, now, body)
	sig := good.signature[0]
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	rawSum := mac(testKey, msgID+"."+good.timestamp[0]+"."+string(body))
	with := func(edit func(h *headers)) headers {
		h := headers{
			id:        append([]string(nil), good.id...),
			timestamp: append([]string(nil), good.timestamp...),
			signature: append([]string(nil), good.signature...),
		}
		edit(&h)
		return h
	}
	tampered := bytes.Replace(body, []byte(`"pending"`), []byte(`"paid"`), 1)
	primary, rotated := webhook.KeyID(testKey), webhook.KeyID(otherKey)

	for _, tc := range []struct {
		name  string
		body  []byte
		h     headers
		at    time.Time
		keyID string // "" means Verify must fail
	}{
		{"good", body, good, now, primary},
		{"second secret", body, signed(otherSecret, msgID, now, body), now, rotated},
		{"signed with the raw key", body, signed(testKey, msgID, now, body), now, primary},
		{"several signatures, the good one last", body, with(func(h *headers) {
			h.signature = []string{"v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)) + " " + standard.Sign([]byte("other"), msgID, now, body) + " " + sig}
		}), now, primary},
		{"several signatures, the good one first", body, with(func(h *headers) { h.signature = []string{sig + " v1,bm9wZQ=="} }), now, primary},
		{"other versions ignored", body, with(func(h *headers) { h.signature = []string{"v1a,c2lnbmF0dXJl v2," + sig[3:] + " " + sig} }), now, primary},
		{"extra spaces", body, with(func(h *headers) { h.signature = []string{"  " + sig + "   v1,bm9wZQ==  "} }), now, primary},
		{"signatures on two header lines", body, with(func(h *headers) { h.signature = []string{"v1,bm9wZQ==", sig} }), now, primary},
		{"unpadded base64", body, with(func(h *headers) { h.signature = []string{"v1," + base64.RawStdEncoding.EncodeToString(rawSum)} }), now, primary},
		{"at the tolerance", body, good, now.Add(standard.DefaultTolerance), primary},
		{"clock skew, sent from the future", body, good, now.Add(-standard.DefaultTolerance), primary},
		{"empty body", []byte{}, signed(testSecret, msgID, now, nil), now, primary},

		{"wrong secret", body, signed([]byte("whsec_"+base64.StdEncoding.EncodeToString([]byte("guessed"))), msgID, now, body), now, ""},
		{"tampered body", tampered, good, now, ""},
		{"body with a trailing newline", append(append([]byte(nil), body...), '\n'), good, now, ""},
		{"another id", body, with(func(h *headers) { h.id = []string{"msg_other"} }), now, ""},
		{"another timestamp", body, with(func(h *headers) { h.timestamp = []string{strconv.FormatInt(now.Unix()+1, 10)} }), now, ""},
		{"expired", body, good, now.Add(standard.DefaultTolerance + time.Second), ""},
		{"from the future", body, good, now.Add(-standard.DefaultTolerance - time.Second), ""},
		{"replayed with a fresh timestamp", body, with(func(h *headers) { h.timestamp = []string{strconv.FormatInt(now.Add(time.Hour).Unix(), 10)} }), now.Add(time.Hour), ""},
		{"no webhook-id", body, with(func(h *headers) { h.id = nil }), now, ""},
		{"no webhook-timestamp", body, with(func(h *headers) { h.timestamp = nil }), now, ""},
		{"no webhook-signature", body, with(func(h *headers) { h.signature = nil }), now, ""},
		{"no headers", body, headers{}, now, ""},
		{"empty webhook-id", body, with(func(h *headers) { h.id = []string{""} }), now, ""},
		{"two webhook-ids", body, with(func(h *headers) { h.id = []string{msgID, msgID} }), now, ""},
		{"two webhook-timestamps", body, with(func(h *headers) { h.timestamp = append(h.timestamp, h.timestamp[0]) }), now, ""},
		{"webhook-id with a dot", body, signed(testSecret, "msg.1", now, body), now, ""},
		{"webhook-id with a space", body, signed(testSecret, "msg 1", now, body), now, ""},
		{"webhook-id too long", body, signed(testSecret, strings.Repeat("m", 257), now, body), now, ""},
		{"timestamp in milliseconds", body, with(func(h *headers) { h.timestamp = []string{strconv.FormatInt(now.UnixMilli(), 10)} }), now, ""},
		{"timestamp with a leading zero", body, with(func(h *headers) { h.timestamp = []string{"0" + h.timestamp[0]} }), now, ""},
		{"timestamp with a sign", body, with(func(h *headers) { h.timestamp = []string{"+" + h.timestamp[0]} }), now, ""},
		{"timestamp in RFC 3339", body, with(func(h *headers) { h.timestamp = []string{now.Format(time.RFC3339)} }), now, ""},
		{"only v1a", body, with(func(h *headers) { h.signature = []string{"v1a," + sig[3:]} }), now, ""},
		{"version in upper case", body, with(func(h *headers) { h.signature = []string{"V1," + sig[3:]} }), now, ""},
		{"no version", body, with(func(h *headers) { h.signature = []string{sig[3:]} }), now, ""},
		{"empty v1", body, with(func(h *headers) { h.signature = []string{"v1,"} }), now, ""},
		{"url-safe alphabet", body, with(func(h *headers) { h.signature = []string{"v1," + base64.URLEncoding.EncodeToString(rawSum)} }), now, ""},
		{"hex", body, with(func(h *headers) { h.signature = []string{"v1," + hex.EncodeToString(rawSum)} }), now, ""},
		{"truncated", body, with(func(h *headers) { h.signature = []string{sig[:len(sig)-4]} }), now, ""},
		{"signature of the body alone", body, with(func(h *headers) {
			h.signature = []string{"v1," + base64.StdEncoding.EncodeToString(mac(testKey, string(body)))}
		}), now, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, testSecret, otherSecret)
			v, err := p.Verify(requestWith(tc.body, tc.h), tc.body, tc.at)
			if tc.keyID == "" {
				var sent []string
				for _, s := range tc.h.signature {
					for _, entry := range strings.Fields(s) {
						_, value, _ := strings.Cut(entry, ",")
						sent = append(sent, value)
					}
				}
				webhooktest.CheckUnauthenticated(t, v, err, append(sent, string(testSecret), string(testKey))...)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := webhook.Verification{Scheme: standard.Scheme, KeyID: tc.keyID, DeliveryID: tc.h.id[0]}
			if v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	body := loadExample(t, "order.paid")
	h := signed(testSecret, msgID, now, body)
	p := newProviderWith(t, standard.Config{Source: testSource, Secrets: [][]byte{testSecret}, Tolerance: time.Minute})
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{
		{0, true}, {time.Minute, true}, {-time.Minute, true},
		{time.Minute + time.Nanosecond, false}, {-time.Minute - time.Nanosecond, false},
		{standard.DefaultTolerance, false},
	} {
		_, err := p.Verify(requestWith(body, h), body, now.Add(tc.skew))
		if (err == nil) != tc.ok {
			t.Errorf("skew %v: err = %v, want ok = %v", tc.skew, err, tc.ok)
		}
	}
	far := headers{id: h.id, timestamp: []string{"9223372036854775807"}, signature: h.signature}
	if _, err := p.Verify(requestWith(body, far), body, now); !errors.Is(err, webhook.ErrUnauthenticated) {
		t.Fatalf("timestamp at the end of int64: %v", err)
	}
}

func TestNewCopiesSecrets(t *testing.T) {
	raw := []byte("mutable-raw-key")
	p := newProvider(t, raw)
	body := loadExample(t, "order.paid")
	h := signed(raw, msgID, now, body)
	raw[0] ^= 0xff
	if _, err := p.Verify(requestWith(body, h), body, now); err != nil {
		t.Fatalf("changing the caller's slice changed the provider's key: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := loadExample(b, "order.created")
	p := newProvider(b, otherSecret, testSecret) // the match is the second key
	r := requestWith(body, signed(testSecret, msgID, now, body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(r, body, now); err != nil {
			b.Fatal(err)
		}
	}
}
