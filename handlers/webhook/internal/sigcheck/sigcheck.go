// Package sigcheck holds what the providers that check a signature share:
// the header that must be sent exactly once, the pool of HMAC-SHA256 keys
// of a source's active secrets, and decoding a SHA-256 digest from hex or
// base64. Each provider keeps what its scheme covers and how it loops over
// its keys.
//
// It imports the standard library and handlers/webhook (for
// ErrUnauthenticated and KeyID); only the provider packages import it.
package sigcheck

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sync"

	"github.com/receiptd/receiptd/handlers/webhook"
)

// Header is a request header a scheme reads. Its errors wrap
// webhook.ErrUnauthenticated, name the provider and the header, and never
// carry a value.
type Header struct {
	name          string
	none, several error
}

// NewHeader returns the header name as provider ("reewild") reads it.
func NewHeader(provider, name string) Header {
	return Header{
		name:    name,
		none:    fmt.Errorf("%s: verify: no %s header: %w", provider, name, webhook.ErrUnauthenticated),
		several: fmt.Errorf("%s: verify: more than one %s header: %w", provider, name, webhook.ErrUnauthenticated),
	}
}

// Value returns the header's value in h: it must be sent exactly once.
func (c Header) Value(h http.Header) (string, error) {
	values := h.Values(c.name)
	switch len(values) {
	case 0:
		return "", c.none
	case 1:
		return values[0], nil
	}
	return "", c.several
}

// Values returns the header's values in h: at least one.
func (c Header) Values(h http.Header) ([]string, error) {
	values := h.Values(c.name)
	if len(values) == 0 {
		return nil, c.none
	}
	return values, nil
}

// Key is one active secret: its key id and a pool of HMAC-SHA256 hashes
// keyed with it. A Key is safe for concurrent use.
type Key struct {
	// ID is the webhook.KeyID of the secret.
	ID string
	// Secret is the secret itself (a copy), for a scheme that hashes it
	// otherwise than as an HMAC key.
	Secret []byte
	macs   sync.Pool // of hash.Hash
}

// NewKey returns the Key of secret, which it copies.
func NewKey(secret []byte) *Key {
	secret = append([]byte(nil), secret...)
	k := &Key{ID: webhook.KeyID(secret), Secret: secret}
	k.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

// Errors of NewKeys.
var (
	errNoSecret    = errors.New("no secret configured")
	errEmptySecret = errors.New("is empty")
)

// NewKeys returns the Keys of a source's active secrets. It fails when
// there is none or one is empty.
func NewKeys(secrets [][]byte) ([]*Key, error) {
	if len(secrets) == 0 {
		return nil, errNoSecret
	}
	keys := make([]*Key, 0, len(secrets))
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("secret %d %w", i, errEmptySecret)
		}
		keys = append(keys, NewKey(s))
	}
	return keys, nil
}

// Sum returns the HMAC-SHA256, under k, of the concatenation of parts.
func (k *Key) Sum(parts ...[]byte) [sha256.Size]byte {
	mac := k.macs.Get().(hash.Hash)
	for _, p := range parts {
		mac.Write(p)
	}
	var out [sha256.Size]byte
	mac.Sum(out[:0])
	mac.Reset()
	k.macs.Put(mac)
	return out
}

// Matches reports, in constant time, whether sig is the HMAC-SHA256 of
// msg under k.
func (k *Key) Matches(msg, sig []byte) bool {
	sum := k.Sum(msg)
	return hmac.Equal(sum[:], sig)
}

// DecodeHex decodes a SHA-256 digest written as 64 hex digits, either
// case, into dst.
func DecodeHex(v string, dst *[sha256.Size]byte) bool {
	if len(v) != hex.EncodedLen(sha256.Size) {
		return false
	}
	n, err := hex.Decode(dst[:], []byte(v))
	return err == nil && n == sha256.Size
}

// The base64 encodings of a digest, strict (the unused bits of the last
// character must be zero, so that a digest has one spelling in each).
var (
	padded      = []*base64.Encoding{base64.StdEncoding.Strict(), base64.URLEncoding.Strict()}
	unpadded    = []*base64.Encoding{base64.RawStdEncoding.Strict(), base64.RawURLEncoding.Strict()}
	paddedLen   = base64.StdEncoding.EncodedLen(sha256.Size)
	unpaddedLen = base64.RawStdEncoding.EncodedLen(sha256.Size)
)

// DecodeBase64 decodes a SHA-256 digest written in base64, padded (44
// characters) or not (43), into dst: in the standard alphabet, or, when
// urlSafe, in the URL-safe one too.
func DecodeBase64(v string, dst *[sha256.Size]byte, urlSafe bool) bool {
	var encs []*base64.Encoding
	switch len(v) {
	case paddedLen:
		encs = padded
	case unpaddedLen:
		encs = unpadded
	default:
		return false
	}
	if !urlSafe {
		encs = encs[:1]
	}
	var buf [sha256.Size + 3]byte // Decode may write up to DecodedLen bytes
	for _, enc := range encs {
		n, err := enc.Decode(buf[:], []byte(v))
		if err == nil && n == sha256.Size {
			copy(dst[:], buf[:n])
			return true
		}
	}
	return false
}
