package signer_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"go/build"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

// TestProvidersVerifyWhatSignSigns: a delivery signed by Sign verifies with
// the provider of its kind, configured with the same secret. This is what
// keeps the sending side (receiptctl, the console) and the verifying side
// from drifting apart.
func TestProvidersVerifyWhatSignSigns(t *testing.T) {
	now := time.Unix(1749441740, 0)
	body := []byte(`{"object_id":93092,"timestamp":"1749441740","type":"offer.created","data":{"box_id":"B1"}}`)
	secret := []byte("signer-test-secret")
	token := []byte("signer-test-token-0123456789")
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})

	must := func(p webhook.Provider, err error) webhook.Provider {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		p    webhook.Provider
		req  signer.Request
	}{
		{"reewild", must(reewild.New(reewild.Config{Source: "s", Secrets: [][]byte{secret}})), signer.Request{Kind: signer.KindReewild, Key: secret}},
		{"reusely", must(reusely.New(reusely.Config{Source: "s", Secrets: [][]byte{secret}})), signer.Request{Kind: signer.KindReusely, Key: secret}},
		{"reusely sha256 base64", must(reusely.New(reusely.Config{Source: "s", Secrets: [][]byte{secret}, Algorithm: reusely.AlgorithmSHA256, Encoding: reusely.EncodingBase64})),
			signer.Request{Kind: signer.KindReusely, Key: secret, Algorithm: signer.ReuselySHA256, Encoding: signer.ReuselyBase64}},
		{"standard", must(standard.New(standard.Config{Source: "s", Secrets: [][]byte{secret}})), signer.Request{Kind: signer.KindStandard, Key: secret}},
		{"standard whsec_", must(standard.New(standard.Config{Source: "s", Secrets: [][]byte{[]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}})),
			signer.Request{Kind: signer.KindStandard, Key: []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), MessageID: "msg_1"}},
		{"reap", must(reap.New(reap.Config{Source: "s", PublicKeys: []*rsa.PublicKey{&priv.PublicKey}})), signer.Request{Kind: signer.KindReap, Key: privPEM}},
		{"reward", must(reward.New(reward.Config{Source: "s", Tokens: [][]byte{token}})), signer.Request{Kind: signer.KindReward, Key: token}},
		{"retm", must(retm.New(retm.Config{Source: "s", Tokens: []retm.Token{{Value: token}}})), signer.Request{Kind: signer.KindRETM, Key: token}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.req.Now = now
			r := httptest.NewRequest(http.MethodPost, "/webhooks/s", bytes.NewReader(body))
			if err := signer.Sign(r.Header, body, c.req); err != nil {
				t.Fatal(err)
			}
			if _, err := c.p.Verify(r, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			other := bytes.Replace(body, []byte("B1"), []byte("B2"), 1)
			if _, err := c.p.Verify(r, other, now); err == nil && c.req.Kind != signer.KindReusely && c.req.Kind != signer.KindReward && c.req.Kind != signer.KindRETM {
				t.Fatal("Verify accepted another body") // Reusely's signature does not cover the body; tokens sign nothing
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	h := http.Header{}
	if err := signer.Sign(h, []byte(`{}`), signer.Request{Kind: "acme"}); !errors.Is(err, signer.ErrNoSigner) {
		t.Errorf("unknown kind: %v", err)
	}
	if err := signer.Sign(h, []byte(`[]`), signer.Request{Kind: signer.KindReusely, Key: []byte("k")}); err == nil {
		t.Error("a reusely body that is not an object")
	}
	if err := signer.Sign(h, []byte(`{}`), signer.Request{Kind: signer.KindReap, Key: []byte("not pem")}); err == nil {
		t.Error("reap without a PEM key")
	}
	if _, err := signer.Reusely([]byte("k"), "md5", "", "1", "2"); err == nil {
		t.Error("an unknown reusely algorithm")
	}
	if _, err := signer.Reusely([]byte("k"), "", "base32", "1", "2"); err == nil {
		t.Error("an unknown reusely encoding")
	}
	if len(h) != 0 {
		t.Errorf("a refused Sign set headers: %v", h)
	}
}

// TestImportsStandardLibraryOnly: a client signs without importing any of
// receiptd's packages beside this one.
func TestImportsStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range pkg.Imports {
		if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
			t.Errorf("signer imports %s", path)
		}
	}
}
