package reusely_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

func mac(secret []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  reusely.Config
		ok   bool
	}{
		{"defaults", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}}, true},
		{"two secrets", reusely.Config{Source: "reusely-eu", Secrets: [][]byte{testSecret, otherSecret}}, true},
		{"sha256 base64", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Algorithm: "sha256", Encoding: "base64", Tolerance: 10 * time.Minute}, true},
		{"explicit defaults", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Algorithm: "hmac-sha256", Encoding: "hex"}, true},
		{"no secrets", reusely.Config{Source: "reusely"}, false},
		{"empty secret", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret, {}}}, false},
		{"no source", reusely.Config{Secrets: [][]byte{testSecret}}, false},
		{"dotted source", reusely.Config{Source: "reu.sely", Secrets: [][]byte{testSecret}}, false},
		{"unknown algorithm", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Algorithm: "md5"}, false},
		{"algorithm case", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Algorithm: "HMAC-SHA256"}, false},
		{"unknown encoding", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Encoding: "base32"}, false},
		{"negative tolerance", reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Tolerance: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reusely.New(tc.cfg)
			webhooktest.CheckNew(t, p, err, tc.ok, tc.cfg.Source, reusely.Kind, 1, tc.cfg.Secrets...)
		})
	}
}

func TestNewCopiesSecrets(t *testing.T) {
	secret := []byte("mutable-secret")
	p := newProvider(t, secret)
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(secret, createdObjectID, createdTS)
	secret[0] ^= 0xff
	if _, err := p.Verify(requestWith(body, sig), body, unix(t, createdTS)); err != nil {
		t.Fatalf("changing the caller's slice changed the provider's secret: %v", err)
	}
}

func TestVerify(t *testing.T) {
	body := loadExample(t, "offer.created")
	at := unix(t, createdTS).Add(3 * time.Second)
	sum := mac(testSecret, createdObjectID, createdTS)
	good := hex.EncodeToString(sum)
	primary, rotated := webhook.KeyID(testSecret), webhook.KeyID(otherSecret)

	for _, tc := range []struct {
		name    string
		body    []byte
		headers []string
		at      time.Time
		keyID   string // "" means Verify must fail
	}{
		{"seed example", body, []string{good}, at, primary},
		{"Sign", body, []string{reusely.Sign(testSecret, createdObjectID, createdTS)}, at, primary},
		{"upper-case hex", body, []string{strings.ToUpper(good)}, at, primary},
		{"surrounding spaces", body, []string{" " + good + " "}, at, primary},
		{"second secret", body, []string{reusely.Sign(otherSecret, createdObjectID, createdTS)}, at, rotated},
		{"received at the timestamp", body, []string{good}, unix(t, createdTS), primary},
		{"first retry, +10 min", body, []string{good}, unix(t, createdTS).Add(10 * time.Minute), primary},
		{"second retry, +40 min", body, []string{good}, unix(t, createdTS).Add(40 * time.Minute), primary},
		{"at the tolerance", body, []string{good}, unix(t, createdTS).Add(reusely.DefaultTolerance), primary},
		{"clock skew, sent from the future", body, []string{good}, unix(t, createdTS).Add(-5 * time.Minute), primary},
		{"object_id as a string", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": "93092"`), []string{good}, at, primary},
		{"timestamp as a number", webhooktest.Replace(t, body, `"timestamp": "1749441740"`, `"timestamp": 1749441740`), []string{good}, at, primary},
		{"body changed elsewhere (not covered)", webhooktest.Replace(t, body, `"Active Leads"`, `"Completed"`), []string{good}, at, primary},

		{"wrong secret", body, []string{reusely.Sign([]byte("not-the-secret"), createdObjectID, createdTS)}, at, ""},
		{"expired", body, []string{good}, unix(t, createdTS).Add(reusely.DefaultTolerance + time.Second), ""},
		{"from the future", body, []string{good}, unix(t, createdTS).Add(-reusely.DefaultTolerance - time.Second), ""},
		{"missing header", body, nil, at, ""},
		{"empty header", body, []string{""}, at, ""},
		{"two headers", body, []string{good, good}, at, ""},
		{"garbled", body, []string{"not a signature"}, at, ""},
		{"bearer prefix", body, []string{"Bearer " + good}, at, ""},
		{"truncated", body, []string{good[:62]}, at, ""},
		{"base64 when hex is configured", body, []string{base64.StdEncoding.EncodeToString(sum)}, at, ""},
		{"separator between the values", body, []string{hex.EncodeToString(mac(testSecret, createdObjectID, ":", createdTS))}, at, ""},
		{"values in the other order", body, []string{reusely.Sign(testSecret, createdTS, createdObjectID)}, at, ""},
		{"plain sha256 when hmac is configured", body, []string{sha256Hex(testSecret, createdObjectID, createdTS)}, at, ""},

		// The body must carry the pair its signature was made for.
		{"body object_id differs", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": 93093`), []string{good}, at, ""},
		{"body timestamp differs", webhooktest.Replace(t, body, `"timestamp": "1749441740"`, `"timestamp": "1749441741"`), []string{good}, at, ""},
		{"signature for another pair", body, []string{reusely.Sign(testSecret, updatedObjectID, updatedTS)}, at, ""},
		{"digit moved across the boundary", webhooktest.Replace(t, webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": 930921`), `"1749441740"`, `"749441740"`), []string{good}, at, ""},
		{"object_id with a leading zero", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": 093092`), []string{reusely.Sign(testSecret, "093092", createdTS)}, at, ""},
		{"object_id string with a leading zero", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": "093092"`), []string{reusely.Sign(testSecret, "093092", createdTS)}, at, ""},
		{"object_id a fraction", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": 93092.0`), []string{reusely.Sign(testSecret, "93092.0", createdTS)}, at, ""},
		{"object_id negative", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": -93092`), []string{reusely.Sign(testSecret, "-93092", createdTS)}, at, ""},
		{"timestamp with a fraction", webhooktest.Replace(t, body, `"1749441740"`, `"1749441740.5"`), []string{reusely.Sign(testSecret, createdObjectID, "1749441740.5")}, at, ""},
		{"timestamp in RFC 3339", webhooktest.Replace(t, body, `"1749441740"`, `"2025-06-09T04:02:20Z"`), []string{reusely.Sign(testSecret, createdObjectID, "2025-06-09T04:02:20Z")}, at, ""},
		{"no object_id", webhooktest.Replace(t, body, `"object_id": 93092,`, ``), []string{reusely.Sign(testSecret, "", createdTS)}, at, ""},
		{"null object_id", webhooktest.Replace(t, body, `"object_id": 93092`, `"object_id": null`), []string{reusely.Sign(testSecret, "null", createdTS)}, at, ""},
		{"no timestamp", webhooktest.Replace(t, body, `"timestamp": "1749441740",`, ``), []string{reusely.Sign(testSecret, createdObjectID, "")}, at, ""},
		{"keys in another case", webhooktest.Replace(t, body, `"object_id"`, `"OBJECT_ID"`), []string{good}, at, ""},
		{"body not JSON", []byte("object_id=93092&timestamp=1749441740"), []string{good}, at, ""},
		{"body a JSON array", []byte(`[93092,"1749441740"]`), []string{good}, at, ""},
		{"body null", []byte(`null`), []string{good}, at, ""},
		{"empty body", nil, []string{good}, at, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, testSecret, otherSecret)
			v, err := p.Verify(requestWith(tc.body, tc.headers...), tc.body, tc.at)
			if tc.keyID == "" {
				webhooktest.CheckUnauthenticated(t, v, err, append(tc.headers, string(testSecret))...)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := webhook.Verification{Scheme: reusely.SchemeHMACSHA256, KeyID: tc.keyID}
			if v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
}

func sha256Hex(secret []byte, parts ...string) string {
	h := sha256.New()
	h.Write(secret)
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestVerifyAlgorithmsAndEncodings: each configuration accepts its own
// signature in every spelling it allows, and no other configuration's.
func TestVerifyAlgorithmsAndEncodings(t *testing.T) {
	body := loadExample(t, "offer.created")
	at := unix(t, createdTS)
	hmacSum := mac(testSecret, createdObjectID, createdTS)
	plain := sha256.Sum256([]byte(string(testSecret) + createdObjectID + createdTS))
	b64 := func(sum []byte) []string {
		return []string{
			base64.StdEncoding.EncodeToString(sum), base64.RawStdEncoding.EncodeToString(sum),
			base64.URLEncoding.EncodeToString(sum), base64.RawURLEncoding.EncodeToString(sum),
		}
	}
	for _, tc := range []struct {
		algorithm, encoding, scheme string
		accept, refuse              []string
	}{
		{"", "", reusely.SchemeHMACSHA256,
			[]string{hex.EncodeToString(hmacSum)},
			append([]string{hex.EncodeToString(plain[:])}, b64(hmacSum)...)},
		{"hmac-sha256", "base64", reusely.SchemeHMACSHA256,
			b64(hmacSum),
			append([]string{hex.EncodeToString(hmacSum)}, b64(plain[:])...)},
		{"sha256", "hex", reusely.SchemeSHA256,
			[]string{hex.EncodeToString(plain[:]), strings.ToUpper(hex.EncodeToString(plain[:]))},
			[]string{hex.EncodeToString(hmacSum), hex.EncodeToString(mac(testSecret, createdObjectID+createdTS))}},
		{"sha256", "base64", reusely.SchemeSHA256,
			b64(plain[:]),
			append([]string{hex.EncodeToString(plain[:])}, b64(hmacSum)...)},
	} {
		t.Run(tc.algorithm+"/"+tc.encoding, func(t *testing.T) {
			cfg := reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Algorithm: tc.algorithm, Encoding: tc.encoding}
			p := newProviderWith(t, cfg)
			for _, sig := range tc.accept {
				v, err := p.Verify(requestWith(body, sig), body, at)
				if err != nil {
					t.Fatalf("Verify(%s): %v", sig, err)
				}
				if v.Scheme != tc.scheme || v.KeyID != webhook.KeyID(testSecret) {
					t.Fatalf("Verify = %+v", v)
				}
			}
			for _, sig := range tc.refuse {
				if _, err := p.Verify(requestWith(body, sig), body, at); !errors.Is(err, webhook.ErrUnauthenticated) {
					t.Fatalf("Verify(%s) = %v, want ErrUnauthenticated", sig, err)
				}
			}
			signed, err := reusely.SignWith(testSecret, tc.algorithm, tc.encoding, createdObjectID, createdTS)
			if err != nil {
				t.Fatal(err)
			}
			if signed != tc.accept[0] {
				t.Fatalf("SignWith = %s, want %s", signed, tc.accept[0])
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(testSecret, createdObjectID, createdTS)
	ts := unix(t, createdTS)
	p := newProviderWith(t, reusely.Config{Source: "reusely", Secrets: [][]byte{testSecret}, Tolerance: 10 * time.Minute})
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{
		{0, true}, {10 * time.Minute, true}, {-10 * time.Minute, true},
		{10*time.Minute + time.Nanosecond, false}, {-10*time.Minute - time.Nanosecond, false},
		{40 * time.Minute, false}, {-24 * time.Hour, false},
	} {
		_, err := p.Verify(requestWith(body, sig), body, ts.Add(tc.skew))
		if (err == nil) != tc.ok {
			t.Errorf("skew %v: err = %v, want ok = %v", tc.skew, err, tc.ok)
		}
	}
	far := webhooktest.Replace(t, body, `"1749441740"`, `"9223372036854775807"`)
	if _, err := p.Verify(requestWith(far, reusely.Sign(testSecret, createdObjectID, "9223372036854775807")), far, ts); !errors.Is(err, webhook.ErrUnauthenticated) {
		t.Fatalf("timestamp at the end of int64: %v", err)
	}
}

// TestVerifyKeepsNoState: Verify checks the signature of the body's own
// pair and nothing else; which box a pair may be used for is the claim's
// business (the handler's, in the log: see TestHandlerClaim*), not a
// memory of this process.
func TestVerifyKeepsNoState(t *testing.T) {
	body := loadExample(t, "offer.created")
	sig := reusely.Sign(testSecret, createdObjectID, createdTS)
	at := unix(t, createdTS).Add(time.Second)
	p := newProvider(t, testSecret)
	otherBox := webhooktest.Replace(t, body, `"STAG03U2O"`, `"STAG99ZZZ"`)
	for i, b := range [][]byte{body, otherBox, body, otherBox} {
		if _, err := p.Verify(requestWith(b, sig), b, at); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
}

func TestKeyIDDoesNotRevealSecret(t *testing.T) {
	id := webhook.KeyID(testSecret)
	if !strings.HasPrefix(id, "sha256:") || strings.Contains(id, string(testSecret)) || id == webhook.KeyID(otherSecret) {
		t.Fatalf("KeyID %q reveals the secret or does not tell secrets apart", id)
	}
}

func TestSign(t *testing.T) {
	got := reusely.Sign(testSecret, createdObjectID, createdTS)
	if want := hex.EncodeToString(mac(testSecret, createdObjectID+createdTS)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if _, err := reusely.SignWith(testSecret, "md5", "", createdObjectID, createdTS); err == nil {
		t.Fatal("SignWith accepted an unknown algorithm")
	}
	if _, err := reusely.SignWith(testSecret, "", "base32", createdObjectID, createdTS); err == nil {
		t.Fatal("SignWith accepted an unknown encoding")
	}
}

func BenchmarkVerify(b *testing.B) {
	body := loadExample(b, "offer.created")
	p := newProvider(b, otherSecret, testSecret) // the match is the second key
	r := requestWith(body, reusely.Sign(testSecret, createdObjectID, createdTS))
	at := unix(b, createdTS)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(r, body, at); err != nil {
			b.Fatal(err)
		}
	}
}
