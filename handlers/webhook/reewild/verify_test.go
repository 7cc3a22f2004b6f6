package reewild_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

var (
	_ webhook.Provider = (*reewild.Provider)(nil)

	testSecret  = []byte("whsec-reewild-test-primary")
	otherSecret = []byte("whsec-reewild-test-rotated")
)

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

func newProvider(tb testing.TB, secrets ...[]byte) *reewild.Provider {
	tb.Helper()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: secrets})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func requestWith(body []byte, signatures ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", strings.NewReader(string(body)))
	for _, s := range signatures {
		r.Header.Add(reewild.SignatureHeader, s)
	}
	return r
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  reewild.Config
		ok   bool
	}{
		{"one secret", reewild.Config{Source: "reewild", Secrets: [][]byte{testSecret}}, true},
		{"two secrets", reewild.Config{Source: "reewild-uk", Secrets: [][]byte{testSecret, otherSecret}}, true},
		{"no secrets", reewild.Config{Source: "reewild"}, false},
		{"empty secret list", reewild.Config{Source: "reewild", Secrets: [][]byte{}}, false},
		{"empty secret", reewild.Config{Source: "reewild", Secrets: [][]byte{testSecret, {}}}, false},
		{"no source", reewild.Config{Secrets: [][]byte{testSecret}}, false},
		{"dotted source", reewild.Config{Source: "ree.wild", Secrets: [][]byte{testSecret}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reewild.New(tc.cfg)
			webhooktest.CheckNew(t, p, err, tc.ok, tc.cfg.Source, reewild.Kind, 1, tc.cfg.Secrets...)
		})
	}
}

func TestNewCopiesSecrets(t *testing.T) {
	secret := []byte("mutable-secret")
	p := newProvider(t, secret)
	body := []byte(`{"eventType":"receipt.failed"}`)
	sig := reewild.Sign(secret, body)
	secret[0] ^= 0xff
	if _, err := p.Verify(requestWith(body, sig), body, time.Time{}); err != nil {
		t.Fatalf("changing the caller's slice changed the provider's secret: %v", err)
	}
}

func TestVerify(t *testing.T) {
	body := loadExample(t, "rewards.awarded")
	sum := mac(testSecret, body)
	p := newProvider(t, testSecret, otherSecret)

	tampered := append([]byte(nil), body...)
	tampered[len(tampered)/2] ^= 1

	for _, tc := range []struct {
		name    string
		body    []byte
		headers []string
		keyID   string // "" means Verify must fail
	}{
		{"hex", body, []string{hex.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"hex upper case", body, []string{strings.ToUpper(hex.EncodeToString(sum))}, webhook.KeyID(testSecret)},
		{"Sign", body, []string{reewild.Sign(testSecret, body)}, webhook.KeyID(testSecret)},
		{"base64", body, []string{base64.StdEncoding.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"base64 unpadded", body, []string{base64.RawStdEncoding.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"base64 url", body, []string{base64.URLEncoding.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"base64 url unpadded", body, []string{base64.RawURLEncoding.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"sha256= hex", body, []string{"sha256=" + hex.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"SHA256= base64", body, []string{"SHA256=" + base64.StdEncoding.EncodeToString(sum)}, webhook.KeyID(testSecret)},
		{"surrounding spaces", body, []string{"  " + hex.EncodeToString(sum) + " "}, webhook.KeyID(testSecret)},
		{"second secret", body, []string{reewild.Sign(otherSecret, body)}, webhook.KeyID(otherSecret)},
		{"empty body", []byte{}, []string{reewild.Sign(testSecret, nil)}, webhook.KeyID(testSecret)},

		{"wrong secret", body, []string{reewild.Sign([]byte("not-the-secret"), body)}, ""},
		{"tampered body", tampered, []string{hex.EncodeToString(sum)}, ""},
		{"missing header", body, nil, ""},
		{"empty header", body, []string{""}, ""},
		{"prefix only", body, []string{"sha256="}, ""},
		{"garbled", body, []string{"not a signature"}, ""},
		{"truncated hex", body, []string{hex.EncodeToString(sum)[:62]}, ""},
		{"hex of a longer mac", body, []string{hex.EncodeToString(append(sum, 0))}, ""},
		{"non-hex digits", body, []string{"zz" + hex.EncodeToString(sum)[2:]}, ""},
		{"other prefix", body, []string{"sha1=" + hex.EncodeToString(sum)}, ""},
		{"two headers", body, []string{hex.EncodeToString(sum), hex.EncodeToString(sum)}, ""},
		{"signature of the empty body", body, []string{reewild.Sign(testSecret, nil)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Verify(requestWith(tc.body, tc.headers...), tc.body, time.Now())
			if tc.keyID == "" {
				webhooktest.CheckUnauthenticated(t, v, err, tc.headers...)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := webhook.Verification{Scheme: reewild.Scheme, KeyID: tc.keyID}
			if v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
}

func TestKeyIDDoesNotRevealSecret(t *testing.T) {
	id := webhook.KeyID(testSecret)
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+8 {
		t.Fatalf("KeyID = %q, want sha256: and 8 hex digits", id)
	}
	if strings.Contains(id, string(testSecret)) || id == webhook.KeyID(otherSecret) {
		t.Fatalf("KeyID %q reveals the secret or does not tell secrets apart", id)
	}
}

func TestSign(t *testing.T) {
	body := []byte(`{"eventType":"user.enrolled"}`)
	got := reewild.Sign(testSecret, body)
	if want := hex.EncodeToString(mac(testSecret, body)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := loadExample(b, "rewards.awarded")
	p := newProvider(b, otherSecret, testSecret) // the match is the second key
	r := requestWith(body, reewild.Sign(testSecret, body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(r, body, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
