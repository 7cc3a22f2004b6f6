// Package signer signs a test delivery as each provider signs its
// webhooks: the sending side of the schemes handlers/webhook verifies.
// receiptctl send, the console's "Send test event", the providers' own
// Sign functions and the tests all sign through it, so that there is one
// statement of what each provider sends.
//
// It imports the standard library only: a client (receiptctl, the
// console) signs without importing a provider package.
package signer

import (
	"cmp"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The provider kinds Sign signs for, as in the config's `kind:`.
const (
	KindReewild  = "reewild"
	KindReusely  = "reusely"
	KindStandard = "standard"
	KindReap     = "reap"
	KindReward   = "reward"
	KindRETM     = "retm"
)

// The headers the providers sign in.
const (
	ReewildHeader     = "X-Reewild-Signature"
	ReuselyHeader     = "Authorization"
	StandardID        = "webhook-id"
	StandardTimestamp = "webhook-timestamp"
	StandardSignature = "webhook-signature"
	ReapHeader        = "Reap-Signature"
	TokenHeader       = "Authorization"
)

// Reusely's algorithms and encodings, as in the config.
const (
	ReuselyHMACSHA256 = "hmac-sha256"
	ReuselySHA256     = "sha256"
	ReuselyHex        = "hex"
	ReuselyBase64     = "base64"
)

// StandardSecretPrefix marks a Standard Webhooks secret serialized as the
// spec says: "whsec_" and the base64 of the key.
const StandardSecretPrefix = "whsec_"

// Reewild returns the lower-case hex HMAC-SHA256 of body under secret: the
// X-Reewild-Signature value Reewild sends.
func Reewild(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Reusely returns the Authorization value Reusely sends for a delivery
// whose envelope carries objectID and timestamp (their decimal text, as in
// the body): the keyed SHA-256 of objectID ‖ timestamp under secret, with
// algorithm ReuselyHMACSHA256 (the default when empty) or ReuselySHA256
// (SHA-256 of secret ‖ objectID ‖ timestamp), in encoding ReuselyHex (the
// default when empty, lower case) or ReuselyBase64 (standard, padded).
func Reusely(secret []byte, algorithm, encoding, objectID, timestamp string) (string, error) {
	var sum []byte
	switch cmp.Or(algorithm, ReuselyHMACSHA256) {
	case ReuselyHMACSHA256:
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(objectID))
		mac.Write([]byte(timestamp))
		sum = mac.Sum(nil)
	case ReuselySHA256:
		h := sha256.New()
		h.Write(secret)
		h.Write([]byte(objectID))
		h.Write([]byte(timestamp))
		sum = h.Sum(nil)
	default:
		return "", fmt.Errorf("reusely: sign: algorithm %q: want %q or %q", algorithm, ReuselyHMACSHA256, ReuselySHA256)
	}
	switch cmp.Or(encoding, ReuselyHex) {
	case ReuselyHex:
		return hex.EncodeToString(sum), nil
	case ReuselyBase64:
		return base64.StdEncoding.EncodeToString(sum), nil
	}
	return "", fmt.Errorf("reusely: sign: encoding %q: want %q or %q", encoding, ReuselyHex, ReuselyBase64)
}

// Errors of StandardKey. They never carry the secret.
var (
	errEmptySecret = errors.New("empty secret")
	errBadSecret   = errors.New(`not "whsec_" followed by standard base64`)
)

// StandardKey returns the HMAC key of a Standard Webhooks secret: the
// base64 (padded or not) after "whsec_", or the bytes themselves without
// that prefix. The result is a copy.
func StandardKey(secret []byte) ([]byte, error) {
	rest, prefixed := strings.CutPrefix(string(secret), StandardSecretPrefix)
	if !prefixed {
		if len(secret) == 0 {
			return nil, errEmptySecret
		}
		return append([]byte(nil), secret...), nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding.Strict(), base64.RawStdEncoding.Strict()} {
		if k, err := enc.DecodeString(rest); err == nil {
			if len(k) == 0 {
				return nil, errEmptySecret
			}
			return k, nil
		}
	}
	return nil, errBadSecret
}

// Standard returns the webhook-signature value ("v1," and the standard
// base64 of the HMAC-SHA256 of id "." ts "." body) of a Standard Webhooks
// delivery with webhook-id id and webhook-timestamp ts (whole Unix
// seconds). secret is taken as StandardKey takes it; a "whsec_" secret
// whose base64 does not decode is used as raw bytes (check it with
// StandardKey first).
func Standard(secret []byte, id string, ts time.Time, body []byte) string {
	k, err := StandardKey(secret)
	if err != nil {
		k = secret
	}
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Reap returns the reap-signature value of body under key, as Reap makes
// it: the standard base64 of the RSA-SHA512 PKCS #1 v1.5 signature of the
// bytes given (sign the compact JSON form to sign as Reap's documentation
// describes).
func Reap(key *rsa.PrivateKey, body []byte) (string, error) {
	if key == nil {
		return "", errors.New("reap: sign: nil private key")
	}
	digest := sha512.Sum512(body)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA512, digest[:])
	if err != nil {
		return "", fmt.Errorf("reap: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// ParseRSAPrivateKey reads an RSA private key from PEM, PKCS #1 or PKCS #8.
func ParseRSAPrivateKey(pemData []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block: want an RSA private key in PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%q block is not an RSA private key: %v", block.Type, err)
	}
	if rk, ok := k.(*rsa.PrivateKey); ok {
		return rk, nil
	}
	return nil, fmt.Errorf("%q block is a %T, not an RSA private key", block.Type, k)
}

// Request is what Sign needs besides the body.
type Request struct {
	// Kind is the provider kind (KindReewild, …).
	Kind string
	// Key is the webhook secret (reewild, reusely, standard), the shared
	// token (reward, retm) or Reap's RSA private key in PEM.
	Key []byte
	// Algorithm and Encoding are Reusely's (empty: the defaults).
	Algorithm, Encoding string
	// MessageID is the Standard Webhooks webhook-id; empty derives one
	// from the body ("msg_" and 24 hex digits of its SHA-256).
	MessageID string
	// Now is the signing time (Standard Webhooks' webhook-timestamp).
	Now time.Time
}

// ErrNoSigner: Sign does not know the kind.
var ErrNoSigner = errors.New("no signer for this kind")

// Sign adds to h the authentication a provider of r.Kind sends with body.
// A Reusely body must be a JSON object carrying object_id and timestamp:
// they are what the signature covers.
func Sign(h http.Header, body []byte, r Request) error {
	switch r.Kind {
	case KindReewild:
		h.Set(ReewildHeader, Reewild(r.Key, body))
	case KindReward, KindRETM:
		h.Set(TokenHeader, "Bearer "+strings.TrimSpace(string(r.Key)))
	case KindReusely:
		var env struct {
			ObjectID  json.RawMessage `json:"object_id"`
			Timestamp json.RawMessage `json:"timestamp"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return fmt.Errorf("sign: a reusely body must be a JSON object with object_id and timestamp: %v", err)
		}
		unquote := func(r json.RawMessage) string { return strings.Trim(string(r), `"`) }
		sig, err := Reusely(r.Key, r.Algorithm, r.Encoding, unquote(env.ObjectID), unquote(env.Timestamp))
		if err != nil {
			return err
		}
		h.Set(ReuselyHeader, sig)
	case KindStandard:
		id := r.MessageID
		if id == "" {
			sum := sha256.Sum256(body)
			id = "msg_" + hex.EncodeToString(sum[:12])
		}
		h.Set(StandardID, id)
		h.Set(StandardTimestamp, strconv.FormatInt(r.Now.Unix(), 10))
		h.Set(StandardSignature, Standard(r.Key, id, r.Now, body))
	case KindReap:
		priv, err := ParseRSAPrivateKey(r.Key)
		if err != nil {
			return fmt.Errorf("sign: reap key: %w", err)
		}
		sig, err := Reap(priv, body)
		if err != nil {
			return err
		}
		h.Set(ReapHeader, sig)
	default:
		return fmt.Errorf("sign: kind %q: %w", r.Kind, ErrNoSigner)
	}
	return nil
}
