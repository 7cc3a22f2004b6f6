// Package authtest makes signing keys, JWK Sets, PEM files and JWTs for
// tests of receiptd's access control: good tokens and the bad ones it must
// refuse (alg none, HS256 signed with a public key, wrong key). Test code
// only; nothing in the server imports it.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key with its JWK id and JWT algorithm.
type Key struct {
	KID     string
	Alg     string // "RS256" or "ES256"
	Private crypto.Signer
}

// RSA returns a new 2048-bit RS256 key.
func RSA(t testing.TB, kid string) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{KID: kid, Alg: "RS256", Private: k}
}

// EC returns a new P-256 ES256 key.
func EC(t testing.TB, kid string) *Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{KID: kid, Alg: "ES256", Private: k}
}

// Sign returns a JWT of claims signed with k, with k's kid in the header
// unless noKID.
func (k *Key) Sign(t testing.TB, claims jwt.MapClaims, noKID ...bool) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	if len(noKID) == 0 || !noKID[0] {
		tok.Header["kid"] = k.KID
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// PublicPEM is k's public key as a PEM "PUBLIC KEY" block.
func (k *Key) PublicPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PrivatePEM is k's private key as a PEM "PRIVATE KEY" block.
func (k *Key) PrivatePEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// JWK is k's public key as a JWK, with use "sig" and its alg.
func (k *Key) JWK(t testing.TB) map[string]any {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := k.Private.Public().(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": k.KID, "use": "sig", "alg": k.Alg,
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		e, err := pub.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		pt := e.Bytes() // 0x04 || X || Y
		return map[string]any{"kty": "EC", "kid": k.KID, "use": "sig", "alg": k.Alg, "crv": "P-256",
			"x": b64(pt[1:33]), "y": b64(pt[33:])}
	}
	t.Fatalf("authtest: unsupported key %T", k.Private)
	return nil
}

// JWKS is a JWK Set of the keys' public parts, plus any extra JWKs given
// as maps.
func JWKS(t testing.TB, keys []*Key, extra ...map[string]any) []byte {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK(t))
	}
	set.Keys = append(set.Keys, extra...)
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// None returns an unsigned token (alg "none") of claims.
func None(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// HS256WithPublicKey returns a token of claims "signed" with HMAC-SHA256
// keyed by k's public key PEM: the algorithm-confusion attack on servers
// that let the token choose how the key is used.
func HS256WithPublicKey(t testing.TB, k *Key, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = k.KID
	s, err := tok.SignedString(k.PublicPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
