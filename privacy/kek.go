package privacy

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// KEK is a key-encryption key: the configured secret (privacy.keys) that
// wraps every data key. It never leaves the process and is never stored
// by receiptd.
type KEK struct {
	fingerprint [8]byte
	aead        cipher.AEAD
}

// kekLen is a KEK's length: AES-256.
const kekLen = 32

// ParseKEK reads a key-encryption key from a config secret's value: 32
// raw bytes, 64 hex digits, or the standard or URL base64 of 32 bytes
// (`openssl rand -hex 32` makes one). The error never holds the value.
func ParseKEK(v []byte) (*KEK, error) {
	if len(v) != kekLen {
		// Text forms may carry spaces and a newline; 32 raw bytes are
		// taken as they are (they may begin or end with a space byte).
		v = bytes.TrimSpace(v)
	}
	var key []byte
	switch {
	case len(v) == 2*kekLen && isHex(v):
		key = make([]byte, kekLen)
		if _, err := hex.Decode(key, v); err != nil {
			return nil, fmt.Errorf("privacy: key-encryption key: %w", ErrBadKEK)
		}
	case len(v) == kekLen:
		key = bytes.Clone(v)
	default:
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(string(v)); err == nil && len(b) == kekLen {
				key = b
				break
			}
		}
	}
	if key == nil {
		return nil, fmt.Errorf("privacy: key-encryption key of %d bytes: want 32 raw bytes, 64 hex digits or the base64 of 32 bytes: %w", len(v), ErrBadKEK)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &KEK{aead: aead}
	// The fingerprint names the KEK in wrapped keys without revealing it: a
	// hash of a domain string and the key, cut to 8 bytes.
	sum := sha256.Sum256(append([]byte("receiptd privacy kek fingerprint\x00"), key...))
	copy(k.fingerprint[:], sum[:])
	clear(key)
	return k, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Fingerprint is the KEK's public name: 16 hex digits. Wrapped keys carry
// it, so that the KEK that wraps them is found among several (rotation).
func (k *KEK) Fingerprint() string { return hex.EncodeToString(k.fingerprint[:]) }

// The wrapped layout: a version byte, the KEK's fingerprint, a nonce and
// the AES-256-GCM ciphertext of the 32-byte secret with its tag. The
// associated data binds it to what it is (a data key and its id, or the
// pepper).
const (
	wrapVersion = 1
	wrappedLen  = 1 + 8 + nonceLen + dataKeyLen + tagLen
)

func dataKeyAAD(id KeyID) []byte { return append([]byte("receiptd data key\x00"), id[:]...) }

var pepperAAD = []byte("receiptd subject pepper\x00")

// wrap seals a 32-byte secret under k.
func (k *KEK) wrap(secret, aad []byte) ([]byte, error) {
	out := make([]byte, 1+8+nonceLen, wrappedLen)
	out[0] = wrapVersion
	copy(out[1:], k.fingerprint[:])
	if _, err := rand.Read(out[9:]); err != nil {
		return nil, fmt.Errorf("privacy: wrap: %w", err)
	}
	return k.aead.Seal(out, out[9:9+nonceLen], secret, aad), nil
}

// wrappedBy returns the fingerprint of the KEK that wrapped w.
func wrappedBy(w []byte) ([8]byte, bool) {
	var fp [8]byte
	if len(w) != wrappedLen || w[0] != wrapVersion {
		return fp, false
	}
	copy(fp[:], w[1:9])
	return fp, true
}

// unwrap opens w with whichever of keks wrapped it.
func unwrap(keks []*KEK, w, aad []byte) ([]byte, error) {
	fp, ok := wrappedBy(w)
	if !ok {
		return nil, fmt.Errorf("privacy: unwrap: malformed wrapped key: %w", ErrTampered)
	}
	for _, k := range keks {
		if k.fingerprint != fp {
			continue
		}
		secret, err := k.aead.Open(nil, w[9:9+nonceLen], w[9+nonceLen:], aad)
		if err != nil {
			return nil, fmt.Errorf("privacy: unwrap under key-encryption key %s: %w", k.Fingerprint(), ErrTampered)
		}
		return secret, nil
	}
	return nil, fmt.Errorf("privacy: unwrap: wrapped under key-encryption key %s: %w", hex.EncodeToString(fp[:]), ErrNoKEK)
}
