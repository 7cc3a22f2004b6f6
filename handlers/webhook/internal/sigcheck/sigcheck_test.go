package sigcheck_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/sigcheck"
)

func TestHeader(t *testing.T) {
	c := sigcheck.NewHeader("acme", "X-Sig")
	h := http.Header{}
	if _, err := c.Value(h); !errors.Is(err, webhook.ErrUnauthenticated) || err.Error() != "acme: verify: no X-Sig header: "+webhook.ErrUnauthenticated.Error() {
		t.Errorf("none: %v", err)
	}
	if _, err := c.Values(h); !errors.Is(err, webhook.ErrUnauthenticated) {
		t.Errorf("Values, none: %v", err)
	}
	h.Add("x-sig", "one")
	if v, err := c.Value(h); v != "one" || err != nil {
		t.Errorf("one: %q, %v", v, err)
	}
	h.Add("X-Sig", "two")
	if _, err := c.Value(h); !errors.Is(err, webhook.ErrUnauthenticated) || !strings.Contains(err.Error(), "more than one X-Sig header") || strings.Contains(err.Error(), "two") {
		t.Errorf("several: %v", err)
	}
	if vs, err := c.Values(h); len(vs) != 2 || err != nil {
		t.Errorf("Values, several: %q, %v", vs, err)
	}
}

func TestKeys(t *testing.T) {
	if _, err := sigcheck.NewKeys(nil); err == nil || err.Error() != "no secret configured" {
		t.Errorf("no secret: %v", err)
	}
	if _, err := sigcheck.NewKeys([][]byte{[]byte("a"), {}}); err == nil || err.Error() != "secret 1 is empty" {
		t.Errorf("an empty secret: %v", err)
	}
	secret := []byte("s3cret")
	keys, err := sigcheck.NewKeys([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	k := keys[0]
	secret[0] = 'x' // the key holds a copy
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte("id.ts.body"))
	want := mac.Sum(nil)
	for range 3 { // through the pool, more than once
		if got := k.Sum([]byte("id"), []byte("."), []byte("ts.body")); !hmac.Equal(got[:], want) {
			t.Fatalf("Sum = %x, want %x", got, want)
		}
	}
	if !k.Matches([]byte("id.ts.body"), want) || k.Matches([]byte("id.ts.bodY"), want) || k.Matches([]byte("id.ts.body"), want[:31]) {
		t.Error("Matches")
	}
	if k.ID != webhook.KeyID([]byte("s3cret")) || string(k.Secret) != "s3cret" {
		t.Errorf("ID %q, Secret %q", k.ID, k.Secret)
	}
}

func TestDecode(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	std := base64.StdEncoding.EncodeToString(sum[:])
	url := base64.URLEncoding.EncodeToString(sum[:])
	if std == url {
		t.Fatal("pick an input whose digest needs the URL alphabet")
	}
	for _, c := range []struct {
		v             string
		hex, b64, url bool
	}{
		{hex.EncodeToString(sum[:]), true, false, false},
		{strings.ToUpper(hex.EncodeToString(sum[:])), true, false, false},
		{std, false, true, true},
		{strings.TrimRight(std, "="), false, true, true},
		{url, false, false, true},
		{strings.TrimRight(url, "="), false, false, true},
		{hex.EncodeToString(sum[:31]), false, false, false},
		{std[:42] + "B=", false, false, false}, // non-zero unused bits: not the strict spelling
		{"", false, false, false},
	} {
		var got [sha256.Size]byte
		if ok := sigcheck.DecodeHex(c.v, &got); ok != c.hex || ok && got != sum {
			t.Errorf("DecodeHex(%q) = %v", c.v, ok)
		}
		if ok := sigcheck.DecodeBase64(c.v, &got, false); ok != c.b64 || ok && got != sum {
			t.Errorf("DecodeBase64(%q, std) = %v", c.v, ok)
		}
		if ok := sigcheck.DecodeBase64(c.v, &got, true); ok != c.url || ok && got != sum {
			t.Errorf("DecodeBase64(%q, url) = %v", c.v, ok)
		}
	}
}
