package privacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Errors of the package; match them with errors.Is.
var (
	// ErrForgotten: the data key a sealed value names was destroyed (its
	// subject was forgotten). Readers show the value as forgotten; it is
	// not a failure.
	ErrForgotten = errors.New("privacy: subject forgotten")
	// ErrUnknownKey: a sealed value names a data key the key store never
	// held (a key store that does not belong to this log, or lost: restore
	// it from its own backup).
	ErrUnknownKey = errors.New("privacy: unknown data key")
	// ErrNoKEK: a wrapped key or the pepper was wrapped under a
	// key-encryption key that is not configured (a key rotated away too
	// early, or the wrong key).
	ErrNoKEK = errors.New("privacy: key-encryption key not configured")
	// ErrBadKEK: a key-encryption key that is not 32 bytes (raw, 64 hex
	// digits or base64).
	ErrBadKEK = errors.New("privacy: malformed key-encryption key")
	// ErrTampered: a sealed value or a wrapped key that does not
	// authenticate under its key.
	ErrTampered = errors.New("privacy: sealed value does not authenticate")
	// ErrBadSubject: a subject with an empty or malformed source or id.
	ErrBadSubject = errors.New("privacy: malformed subject")
	// ErrClosed: the key store was closed.
	ErrClosed = errors.New("privacy: key store closed")
)

// KeyID names a data key: 16 random bytes, the only thing a sealed value
// says about its key. It names no subject.
type KeyID [16]byte

// String returns the id as 32 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID parses the String form of a key id.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("privacy: parse key id %.40q: %w", s, ErrUnknownKey)
	}
	copy(id[:], b)
	return id, nil
}

func newKeyID() (KeyID, error) {
	var id KeyID
	_, err := rand.Read(id[:])
	return id, err
}

// Subject is a person as receiptd knows them: an id within a user id
// namespace (a configured source's name; a source that shares another's
// user ids seals under that one's namespace). Every value sealed for a
// subject is sealed under the subject's current data key.
type Subject struct {
	// Source is the user id namespace.
	Source string
	// ID is the subject's id in it: a user id, a customer id, or a
	// pseudonym (Keyring.Pseudonym) where the provider names a person only
	// by personal data.
	ID string
}

func (s Subject) String() string { return s.Source + "/" + s.ID }

// maxSubjectID bounds a subject id (they appear in KurrentDB stream names).
const maxSubjectID = 256

// Check reports whether s can name a subject: a source and an id, neither
// holding a NUL byte, the source no '.' or '/' (it is part of stream names).
func (s Subject) Check() error {
	switch {
	case s.Source == "" || s.ID == "":
		return fmt.Errorf("privacy: subject %q: empty source or id: %w", s, ErrBadSubject)
	case len(s.ID) > maxSubjectID || len(s.Source) > 64:
		return fmt.Errorf("privacy: subject %.80q: too long: %w", s, ErrBadSubject)
	case strings.ContainsAny(s.Source, "./\x00") || strings.ContainsRune(s.ID, 0):
		return fmt.Errorf("privacy: subject %q: forbidden character: %w", s, ErrBadSubject)
	}
	return nil
}

// Key is a subject's data key: AES-256-GCM with random 96-bit nonces. A
// subject seals at most a few thousand values under one key, far below
// the 2^32 random nonces one GCM key bears.
type Key struct {
	ID   KeyID
	aead cipher.AEAD
}

// newKey returns the Key of 32 bytes of key material.
func newKey(id KeyID, material []byte) (*Key, error) {
	if len(material) != dataKeyLen {
		return nil, fmt.Errorf("privacy: data key %s: %d bytes, want %d: %w", id, len(material), dataKeyLen, ErrTampered)
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{ID: id, aead: aead}, nil
}

const dataKeyLen = 32

// Purpose says what a sealed value holds; it is bound to the value (as
// associated data), so a value sealed for one purpose never opens as
// another.
type Purpose byte

const (
	// PurposeBody: a provider's raw body (compressed).
	PurposeBody Purpose = 'b'
	// PurposeFields: the personal fields of a normalized event.
	PurposeFields Purpose = 'f'
)

// The sealed-value ("box") layout: magic, key id, nonce, then the
// AES-256-GCM ciphertext with its 16-byte tag. The associated data is the
// magic, the key id and the purpose. The magic cannot begin a zstd frame
// (28 B5 2F FD) or a protobuf message of the log's, so a reader tells a
// sealed body from a clear one by its first bytes.
const (
	boxMagic    = "\x00rk1"
	nonceLen    = 12
	tagLen      = 16
	boxHeader   = len(boxMagic) + len(KeyID{}) + nonceLen
	BoxOverhead = boxHeader + tagLen
)

// IsSealed reports whether b is a sealed value (it starts with the box
// magic).
func IsSealed(b []byte) bool { return len(b) >= BoxOverhead && string(b[:len(boxMagic)]) == boxMagic }

// SealedKeyID returns the key id a sealed value names.
func SealedKeyID(box []byte) (KeyID, bool) {
	var id KeyID
	if !IsSealed(box) {
		return id, false
	}
	copy(id[:], box[len(boxMagic):])
	return id, true
}

func boxAAD(id KeyID, p Purpose) []byte {
	aad := make([]byte, 0, len(boxMagic)+len(id)+1)
	return append(append(append(aad, boxMagic...), id[:]...), byte(p))
}

// Seal appends the sealed form of plaintext to dst and returns it: the
// magic, k's id, a random nonce, the ciphertext and its tag.
func (k *Key) Seal(dst []byte, p Purpose, plaintext []byte) ([]byte, error) {
	n := len(dst)
	dst = append(dst, boxMagic...)
	dst = append(dst, k.ID[:]...)
	dst = append(dst, make([]byte, nonceLen)...)
	nonce := dst[len(dst)-nonceLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("privacy: seal: %w", err)
	}
	var aad [len(boxMagic) + 16 + 1]byte
	copy(aad[:], dst[n:n+len(boxMagic)+16])
	aad[len(aad)-1] = byte(p)
	return k.aead.Seal(dst, nonce, plaintext, aad[:]), nil
}

// Open appends the plaintext of box, sealed under k for p, to dst.
func (k *Key) Open(dst []byte, p Purpose, box []byte) ([]byte, error) {
	id, ok := SealedKeyID(box)
	if !ok {
		return nil, fmt.Errorf("privacy: open: not a sealed value: %w", ErrTampered)
	}
	if id != k.ID {
		return nil, fmt.Errorf("privacy: open: value sealed under key %s, not %s: %w", id, k.ID, ErrTampered)
	}
	nonce := box[len(boxMagic)+len(id) : boxHeader]
	out, err := k.aead.Open(dst, nonce, box[boxHeader:], boxAAD(id, p))
	if err != nil {
		return nil, fmt.Errorf("privacy: open value sealed under key %s: %w", id, ErrTampered)
	}
	return out, nil
}

// Opener finds the data key a sealed value names. A Keyring is one.
type Opener interface {
	// Key returns the data key id names: an error matching ErrForgotten
	// when it was destroyed, ErrUnknownKey when it never existed.
	Key(ctx context.Context, id KeyID) (*Key, error)
}

// OpenWith opens box with the key it names, found by o, for purpose p. It
// returns an error matching ErrForgotten when that key was destroyed.
func OpenWith(ctx context.Context, o Opener, p Purpose, box []byte) ([]byte, error) {
	id, ok := SealedKeyID(box)
	if !ok {
		return nil, fmt.Errorf("privacy: open: not a sealed value: %w", ErrTampered)
	}
	if o == nil {
		return nil, fmt.Errorf("privacy: open value sealed under key %s: no key store configured: %w", id, ErrUnknownKey)
	}
	k, err := o.Key(ctx, id)
	if err != nil {
		return nil, err
	}
	return k.Open(nil, p, box)
}
