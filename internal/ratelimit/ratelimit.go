// Package ratelimit holds token buckets keyed by a string (a principal, a
// client address, a webhook source), in a table of bounded size.
//
// # Basics
//
// New(perSecond, burst, maxKeys) returns a Keyed limiter; Take(key, now)
// takes one token from key's bucket, or tells how long until one is there.
// Buckets are golang.org/x/time/rate limiters, created full on first use.
//
// # Caveats
//
// The table keeps at most maxKeys buckets: the least recently used one is
// dropped to make room, so memory cannot grow with the number of keys an
// attacker invents. A dropped key that comes back starts with a full bucket
// again; with maxKeys well above the number of keys active within one
// refill time (burst / perSecond), that only happens to keys idle long
// enough to have refilled anyway.
package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is the table size New uses when given 0.
const DefaultMaxKeys = 65536

// Keyed is a set of token buckets with the same rate and burst, one per key.
// It is safe for concurrent use.
type Keyed struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*list.Element // of *entry
	lru     *list.List               // front: most recently used
}

type entry struct {
	key string
	lim *rate.Limiter
}

// New returns a limiter allowing each key perSecond calls a second on
// average and burst at once. maxKeys bounds the number of keys tracked
// (DefaultMaxKeys if 0).
func New(perSecond float64, burst, maxKeys int) (*Keyed, error) {
	switch {
	case !(perSecond > 0) || math.IsInf(perSecond, 0):
		return nil, fmt.Errorf("ratelimit: rate %v is not a positive number", perSecond)
	case burst < 1:
		return nil, fmt.Errorf("ratelimit: burst %d is less than 1", burst)
	case maxKeys < 0:
		return nil, errors.New("ratelimit: negative maxKeys")
	case maxKeys == 0:
		maxKeys = DefaultMaxKeys
	}
	return &Keyed{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		maxKeys: maxKeys,
		buckets: make(map[string]*list.Element),
		lru:     list.New(),
	}, nil
}

// Take takes one token from key's bucket at now. If the bucket is empty it
// takes nothing and returns false and how long until a token is there
// (at least a nanosecond).
func (k *Keyed) Take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	lim := k.bucket(key)
	r := lim.ReserveN(now, 1)
	if !r.OK() { // cannot happen with burst >= 1; refuse rather than wait forever
		return false, time.Second
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	r.CancelAt(now)
	return false, d
}

// Len is the number of keys tracked.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lru.Len()
}

func (k *Keyed) bucket(key string) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.buckets[key]; ok {
		k.lru.MoveToFront(el)
		return el.Value.(*entry).lim
	}
	for k.lru.Len() >= k.maxKeys {
		oldest := k.lru.Back()
		k.lru.Remove(oldest)
		delete(k.buckets, oldest.Value.(*entry).key)
	}
	e := &entry{key: key, lim: rate.NewLimiter(k.limit, k.burst)}
	k.buckets[key] = k.lru.PushFront(e)
	return e.lim
}

// RetryAfterSeconds renders d as the whole seconds of a Retry-After header:
// rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
