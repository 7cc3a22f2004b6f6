package privacy

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options tune a Keyring. The zero value is usable.
type Options struct {
	// CacheBytes bounds the data keys kept unwrapped in memory (about 1
	// KiB each); the least recently used are dropped past it and unwrapped
	// again from the store when next needed. Default 16 MiB.
	CacheBytes int64
	// Recheck is how long a cached key is trusted before the store is
	// asked again whether it still exists: 0 (never ask again) for a store
	// only this process writes (FileStore); a few seconds where other
	// processes may forget a subject (StreamStore on KurrentDB): a node
	// stops opening a forgotten subject's values within Recheck of
	// another node forgetting it.
	Recheck time.Duration
	// Clock stamps forgets. Default time.Now.
	Clock func() time.Time

	// Log, given with a FileStore, turns on the key pool (see pool.go):
	// new subjects get keys created ahead of need, their claims committed
	// in the background, and NewKeyring first recovers from the log the
	// claims a crash left uncommitted. Give it only where the keys seal
	// events appended to that log after the Keyring opens (the server),
	// not where they seal a log rewritten in place.
	Log ClaimLog
	// PoolSize is the number of keys the pool keeps ready (default
	// DefaultPoolSize, at most an eighth of what CacheBytes holds: about
	// 1 KiB each); ClaimInterval how often claims are committed (default
	// DefaultClaimInterval).
	PoolSize      int
	ClaimInterval time.Duration
	// Logger reports the pool's background failures and recoveries.
	Logger *slog.Logger
}

// DefaultCacheBytes is Options.CacheBytes' default.
const DefaultCacheBytes = 16 << 20

// keyCost is the estimated heap cost of a cached key (the AES key
// schedule, the GCM tables, the entry and its map slots).
const keyCost = 1024

// Keyring is receiptd's view of the data keys: it gets or creates a
// subject's key to seal with, finds the key a sealed value names to open
// it, forgets subjects, and names subjects that providers know only by
// personal data. It is safe for concurrent use.
type Keyring struct {
	store   Store
	keks    []*KEK
	pepper  []byte
	recheck time.Duration
	clock   func() time.Time

	mu        sync.Mutex
	lru       *list.List // of *cached, most recently used first
	byKey     map[KeyID]*list.Element
	bySubject map[Subject]*list.Element
	maxKeys   int
	creating  map[Subject]*creation

	pool *pool // nil without Options.Log and a FileStore
}

type cached struct {
	key     *Key
	subject Subject // the subject it is current for, if known
	current bool
	checked time.Time
}

type creation struct {
	done chan struct{}
	key  *Key
	err  error
}

// NewKeyring returns a Keyring over store. keks are the configured
// key-encryption keys: the first wraps every key created from now on, all
// of them unwrap (rotation: put the new KEK first, keep the old ones until
// Rewrap has run). It reads the pepper from the store, creating it on
// first use.
func NewKeyring(ctx context.Context, store Store, keks []*KEK, opts Options) (*Keyring, error) {
	if store == nil || len(keks) == 0 || slices.Contains(keks, nil) {
		return nil, errors.New("privacy: new keyring: no store, or no (or a nil) key-encryption key")
	}
	r := &Keyring{
		store: store, keks: keks, recheck: opts.Recheck, clock: opts.Clock,
		lru: list.New(), byKey: map[KeyID]*list.Element{}, bySubject: map[Subject]*list.Element{},
		creating: map[Subject]*creation{},
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	cacheBytes := opts.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	r.maxKeys = int(max(16, cacheBytes/keyCost))

	fresh := make([]byte, dataKeyLen)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	candidate, err := keks[0].wrap(fresh, pepperAAD)
	clear(fresh)
	if err != nil {
		return nil, err
	}
	wrapped, err := store.Pepper(ctx, candidate)
	if err != nil {
		return nil, fmt.Errorf("privacy: new keyring: read the pepper: %w", err)
	}
	if r.pepper, err = unwrap(keks, wrapped, pepperAAD); err != nil {
		return nil, fmt.Errorf("privacy: new keyring: the pepper: %w", err)
	}
	if ps, ok := store.(poolStore); ok && opts.Log != nil {
		if err := r.startPool(ctx, ps, opts); err != nil {
			return nil, fmt.Errorf("privacy: new keyring: %w", err)
		}
	}
	return r, nil
}

// Pseudonym returns the subject id receiptd uses for a person a provider
// names only by a personal value (Reusely's customer e-mail): "p" and 32
// hex digits of an HMAC-SHA256 of the value, trimmed and lower-cased,
// under the store's pepper (a random secret kept wrapped in the key
// store). The same value always gives the same id; without the pepper
// the id cannot be traced back to the value, not even by trying a list of
// addresses.
func (r *Keyring) Pseudonym(kind, value string) string {
	m := hmac.New(sha256.New, r.pepper)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(strings.ToLower(strings.TrimSpace(value))))
	return "p" + hex.EncodeToString(m.Sum(nil)[:16])
}

// IsPseudonym reports whether id has the form of a Pseudonym.
func IsPseudonym(id string) bool {
	if len(id) != 33 || id[0] != 'p' {
		return false
	}
	_, err := hex.DecodeString(id[1:])
	return err == nil && strings.ToLower(id) == id
}

// SealKey returns the key to seal the subject's values with: its current
// key, or a new one, created durably in the store before it is returned.
func (r *Keyring) SealKey(ctx context.Context, s Subject) (*Key, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	now := r.clock()
	r.mu.Lock()
	if el, ok := r.bySubject[s]; ok {
		c := el.Value.(*cached)
		if r.fresh(c, now) {
			r.lru.MoveToFront(el)
			r.mu.Unlock()
			return c.key, nil
		}
	}
	if r.pool != nil {
		if k, ok := r.pool.pending[s]; ok {
			r.mu.Unlock()
			return k, nil
		}
	}
	if c, ok := r.creating[s]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.key, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &creation{done: make(chan struct{})}
	r.creating[s] = c
	r.mu.Unlock()

	c.key, c.err = r.loadOrCreate(ctx, s)
	r.mu.Lock()
	delete(r.creating, s)
	if c.err == nil {
		r.put(c.key, s, true, now)
	}
	r.mu.Unlock()
	close(c.done)
	return c.key, c.err
}

func (r *Keyring) fresh(c *cached, now time.Time) bool {
	return r.recheck <= 0 || now.Sub(c.checked) < r.recheck
}

func (r *Keyring) loadOrCreate(ctx context.Context, s Subject) (*Key, error) {
	rec, ok, err := r.store.Current(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("privacy: key of subject %s: %w", s, err)
	}
	if !ok {
		if r.pool != nil {
			r.mu.Lock()
			k := r.pool.claim(s)
			r.mu.Unlock()
			if k != nil {
				return k, nil
			}
		}
		k, err := r.create(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("privacy: create a key for subject %s: %w", s, err)
		}
		return k, nil
	}
	return r.unwrapRecord(rec)
}

// create makes a fresh key s's current one in the store, durably, and
// returns s's current key: the fresh one, or the one another writer
// created first.
func (r *Keyring) create(ctx context.Context, s Subject) (*Key, error) {
	rec, k, err := r.newRecord()
	if err != nil {
		return nil, err
	}
	cur, err := r.store.Create(ctx, s, rec)
	if err != nil {
		return nil, err
	}
	if cur.ID == k.ID {
		return k, nil
	}
	return r.unwrapRecord(cur)
}

// newRecord makes a fresh data key: its record (wrapped by the first KEK)
// and the key itself.
func (r *Keyring) newRecord() (Record, *Key, error) {
	id, err := newKeyID()
	if err != nil {
		return Record{}, nil, err
	}
	material := make([]byte, dataKeyLen)
	defer clear(material)
	if _, err := rand.Read(material); err != nil {
		return Record{}, nil, err
	}
	w, err := r.keks[0].wrap(material, dataKeyAAD(id))
	if err != nil {
		return Record{}, nil, err
	}
	k, err := newKey(id, material)
	if err != nil {
		return Record{}, nil, err
	}
	return Record{ID: id, Wrapped: w}, k, nil
}

func (r *Keyring) unwrapRecord(rec Record) (*Key, error) {
	material, err := unwrap(r.keks, rec.Wrapped, dataKeyAAD(rec.ID))
	if err != nil {
		return nil, fmt.Errorf("privacy: data key %s: %w", rec.ID, err)
	}
	defer clear(material)
	return newKey(rec.ID, material)
}

// Key returns the data key id names, for opening: an error matching
// ErrForgotten when it was destroyed, ErrUnknownKey when the store never
// held it. It implements Opener.
func (r *Keyring) Key(ctx context.Context, id KeyID) (*Key, error) {
	now := r.clock()
	r.mu.Lock()
	if el, ok := r.byKey[id]; ok {
		c := el.Value.(*cached)
		if r.fresh(c, now) {
			r.lru.MoveToFront(el)
			r.mu.Unlock()
			return c.key, nil
		}
	}
	r.mu.Unlock()
	rec, err := r.store.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrForgotten) {
			r.drop(id)
		}
		return nil, err
	}
	k, err := r.unwrapRecord(rec)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.put(k, Subject{}, false, now)
	r.mu.Unlock()
	return k, nil
}

// put caches k (for s when current), under r.mu.
func (r *Keyring) put(k *Key, s Subject, current bool, now time.Time) {
	if el, ok := r.byKey[k.ID]; ok {
		c := el.Value.(*cached)
		c.key, c.checked = k, now
		if current {
			if c.current && c.subject != s {
				delete(r.bySubject, c.subject)
			}
			c.subject, c.current = s, true
			r.bySubject[s] = el
		}
		r.lru.MoveToFront(el)
		return
	}
	if current {
		if old, ok := r.bySubject[s]; ok {
			r.remove(old)
		}
	}
	el := r.lru.PushFront(&cached{key: k, subject: s, current: current, checked: now})
	r.byKey[k.ID] = el
	if current {
		r.bySubject[s] = el
	}
	for r.lru.Len() > r.maxKeys {
		r.remove(r.lru.Back())
	}
}

func (r *Keyring) remove(el *list.Element) {
	c := el.Value.(*cached)
	r.lru.Remove(el)
	delete(r.byKey, c.key.ID)
	if c.current && r.bySubject[c.subject] == el {
		delete(r.bySubject, c.subject)
	}
}

func (r *Keyring) drop(id KeyID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.byKey[id]; ok {
		r.remove(el)
	}
}

// Forget destroys the subject's current key in the store (and in this
// process's memory), so that every value sealed under it stays sealed for
// good, and returns the ids destroyed. A value sealed for the subject
// afterwards gets a fresh key. A delivery being sealed while its subject
// is forgotten may be sealed under the key being destroyed: it is
// forgotten with the rest.
func (r *Keyring) Forget(ctx context.Context, s Subject) ([]KeyID, time.Time, error) {
	if err := s.Check(); err != nil {
		return nil, time.Time{}, err
	}
	// A claim on a pooled key must be in the store to be destroyed.
	if err := r.flush(ctx); err != nil {
		return nil, time.Time{}, fmt.Errorf("privacy: forget subject %s: %w", s, err)
	}
	at := r.clock().UTC()
	ids, err := r.store.Destroy(ctx, s, at)
	r.mu.Lock()
	if el, ok := r.bySubject[s]; ok {
		r.remove(el)
	}
	for _, id := range ids {
		if el, ok := r.byKey[id]; ok {
			r.remove(el)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("privacy: forget subject %s: %w", s, err)
	}
	return ids, at, nil
}

// DestroyKeys destroys the keys of ids the store still holds, whoever
// they belong to, and returns those it destroyed: receiptd privacy
// reforget passes the ids the log's subject.forgotten.v1 events name, to
// re-apply the forgets to a key store restored from an older backup. It
// needs a store that can (FileStore).
func (r *Keyring) DestroyKeys(ctx context.Context, ids []KeyID) ([]KeyID, error) {
	kd, ok := r.store.(KeyDestroyer)
	if !ok {
		return nil, errors.New("privacy: destroy keys: this key store cannot destroy keys by id")
	}
	if err := r.flush(ctx); err != nil {
		return nil, err
	}
	destroyed, err := kd.DestroyKeys(ctx, ids, r.clock().UTC())
	r.mu.Lock()
	for _, id := range destroyed {
		if el, ok := r.byKey[id]; ok {
			r.remove(el)
		}
	}
	r.mu.Unlock()
	return destroyed, err
}

// Forgotten returns when the subject was last forgotten (zero if never).
func (r *Keyring) Forgotten(ctx context.Context, s Subject) (time.Time, error) {
	if err := s.Check(); err != nil {
		return time.Time{}, err
	}
	return r.store.Forgotten(ctx, s)
}

// Current returns the id of the subject's current key, if it has one.
func (r *Keyring) Current(ctx context.Context, s Subject) (KeyID, bool, error) {
	if err := s.Check(); err != nil {
		return KeyID{}, false, err
	}
	if r.pool != nil {
		r.mu.Lock()
		k, ok := r.pool.pending[s]
		r.mu.Unlock()
		if ok {
			return k.ID, true, nil
		}
	}
	rec, ok, err := r.store.Current(ctx, s)
	return rec.ID, ok, err
}

// Rewrap rewraps every stored key (and the pepper) that another KEK
// wrapped under the first one, so that the others can then be dropped
// from the config. It needs a store that can rewrite its records
// (FileStore); it returns the number of records rewrapped.
func (r *Keyring) Rewrap(ctx context.Context) (int, error) {
	rw, ok := r.store.(Rewrapper)
	if !ok {
		return 0, errors.New("privacy: rewrap: this key store cannot rewrite its keys; keep every key-encryption key configured")
	}
	primary := r.keks[0]
	redo := func(w, aad []byte) ([]byte, bool, error) {
		if fp, ok := wrappedBy(w); ok && fp == primary.fingerprint {
			return nil, false, nil
		}
		secret, err := unwrap(r.keks, w, aad)
		if err != nil {
			return nil, false, err
		}
		defer clear(secret)
		nw, err := primary.wrap(secret, aad)
		return nw, err == nil, err
	}
	return rw.Rewrap(ctx,
		func(w []byte) ([]byte, bool, error) { return redo(w, pepperAAD) },
		func(rec Record) ([]byte, bool, error) { return redo(rec.Wrapped, dataKeyAAD(rec.ID)) })
}

// Close commits the key pool's pending claims and closes the store.
func (r *Keyring) Close() error {
	err := r.stopPool()
	clear(r.pepper)
	return errors.Join(err, r.store.Close())
}
