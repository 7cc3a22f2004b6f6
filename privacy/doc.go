// Package privacy seals personal data for crypto-shredding: every person
// receiptd holds data about (a subject) gets a random data key, and the
// personal parts of their events (the provider's raw body, the personal
// fields of the normalized payload) are sealed under it before they are
// appended to the log. Forgetting a subject destroys its key: the log
// stays append-only and every balance and audit still reconciles (amounts,
// points, statuses and ids stay in the clear), while the sealed values can
// never be opened again.
//
// # Basics
//
// A Key is AES-256-GCM from the standard library, with random nonces. A
// sealed value (Key.Seal) is self-describing: a magic, the key's random
// id, the nonce, the ciphertext and its tag; the associated data binds
// the magic, the key id and what the value holds (Purpose). The id names
// no subject.
//
// Data keys are stored wrapped by a key-encryption key (KEK) from the
// config, never in the clear. Several KEKs may be configured: the first
// wraps new keys, every one unwraps (rotation), and Keyring.Rewrap moves
// every key to the first.
//
// A Keyring gets or creates a subject's key to seal with (SealKey), finds
// the key a sealed value names to open it (Key, which answers
// ErrForgotten for a destroyed key), forgets subjects (Forget) and names
// subjects that providers know only by personal data (Pseudonym: an HMAC
// under a random pepper kept wrapped in the key store). It keeps unwrapped
// keys in a bounded cache.
//
// A new subject's key is created durably before anything is sealed under
// it. With Options.Log (the server), a Keyring over a FileStore keeps a
// pool of keys created ahead of need and gives a new subject one at once;
// the claim is committed in the background, and until it is, what is
// sealed under the key names the subject inside the ciphertext, so that
// after a crash NewKeyring recovers the claim from the log (pool.go).
//
// The keys live in a Store: FileStore, a small bbolt file beside the
// embedded log (compacted and the old file zeroed whenever a key is
// destroyed, since bbolt keeps freed pages' old bytes), or StreamStore,
// streams of their own in KurrentDB (a destroyed key's stream is
// tombstoned; a scavenge removes its bytes).
//
// # Caveats
//
// Crypto-shredding is as good as the places a key may hide: backups of
// the key store, a copy-on-write file system or its snapshots, an SSD's
// remapped blocks, a KurrentDB node not yet scavenged. The README's
// "Personal data" says what an operator must do about each.
//
// This package imports the standard library, bbolt, uuid, aggregate and
// eventstore (for StreamStore's events); never a handler, a projection or
// eventcodec (which imports it).
package privacy
