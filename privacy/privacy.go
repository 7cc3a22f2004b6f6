package privacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
	// claim, while the key's claim by its subject is not durable in the
	// key store yet (a key taken from the Keyring's pool), is the subject
	// encoded for a claim box (see claimMagic); nil otherwise.
	claim atomic.Pointer[[]byte]
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
//
// A claim box (claimMagic) is a box sealed under a key whose claim by its
// subject was not yet durable in the key store when it was sealed (a key
// the Keyring took from its pool): its plaintext starts with the subject
// (source and id, each a uvarint length and the bytes), so that after a
// crash the Keyring finds, in the log, which subject each such key was
// given to (see Options.Log). Open returns what follows the subject, so
// readers see no difference. The subject is sealed with the rest: it is
// gone with the key.
const (
	boxMagic    = "\x00rk1"
	claimMagic  = "\x00rk2"
	nonceLen    = 12
	tagLen      = 16
	boxHeader   = len(boxMagic) + len(KeyID{}) + nonceLen
	BoxOverhead = boxHeader + tagLen
)

// IsSealed reports whether b is a sealed value (it starts with the box
// magic).
func IsSealed(b []byte) bool {
	if len(b) < BoxOverhead {
		return false
	}
	m := string(b[:len(boxMagic)])
	return m == boxMagic || m == claimMagic
}

// SealedKeyID returns the key id a sealed value names.
func SealedKeyID(box []byte) (KeyID, bool) {
	var id KeyID
	if !IsSealed(box) {
		return id, false
	}
	copy(id[:], box[len(boxMagic):])
	return id, true
}

// encodeClaim is the subject's prefix of a claim box's plaintext.
func encodeClaim(s Subject) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen16+len(s.Source)+len(s.ID))
	b = binary.AppendUvarint(b, uint64(len(s.Source)))
	b = append(b, s.Source...)
	b = binary.AppendUvarint(b, uint64(len(s.ID)))
	return append(b, s.ID...)
}

// decodeClaim splits a claim box's plaintext into its subject and the
// value.
func decodeClaim(b []byte) (Subject, []byte, bool) {
	var parts [2]string
	for i := range parts {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return Subject{}, nil, false
		}
		parts[i] = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	return Subject{Source: parts[0], ID: parts[1]}, b, true
}

// Seal appends the sealed form of plaintext to dst and returns it: the
// magic, k's id, a random nonce, the ciphertext and its tag (a claim box
// while k's claim is not durable; see claimMagic).
func (k *Key) Seal(dst []byte, p Purpose, plaintext []byte) ([]byte, error) {
	magic := boxMagic
	if claim := k.claim.Load(); claim != nil {
		magic = claimMagic
		plaintext = append(append(make([]byte, 0, len(*claim)+len(plaintext)), *claim...), plaintext...)
	}
	n := len(dst)
	dst = append(dst, magic...)
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
	out, _, err := k.open(dst, p, box)
	return out, err
}

// open is Open, also returning the subject a claim box names (ok false
// for a plain box).
func (k *Key) open(dst []byte, p Purpose, box []byte) (out []byte, claim Subject, err error) {
	id, ok := SealedKeyID(box)
	if !ok {
		return nil, Subject{}, fmt.Errorf("privacy: open: not a sealed value: %w", ErrTampered)
	}
	if id != k.ID {
		return nil, Subject{}, fmt.Errorf("privacy: open: value sealed under key %s, not %s: %w", id, k.ID, ErrTampered)
	}
	var aad [len(boxMagic) + 16 + 1]byte
	copy(aad[:], box[:len(boxMagic)+16])
	aad[len(aad)-1] = byte(p)
	nonce := box[len(boxMagic)+len(id) : boxHeader]
	n := len(dst)
	out, err = k.aead.Open(dst, nonce, box[boxHeader:], aad[:])
	if err != nil {
		return nil, Subject{}, fmt.Errorf("privacy: open value sealed under key %s: %w", id, ErrTampered)
	}
	if string(box[:len(claimMagic)]) != claimMagic {
		return out, Subject{}, nil
	}
	claim, rest, ok := decodeClaim(out[n:])
	if !ok {
		return nil, Subject{}, fmt.Errorf("privacy: open value sealed under key %s: a malformed claim: %w", id, ErrTampered)
	}
	m := copy(out[n:], rest)
	return out[:n+m], claim, nil
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
