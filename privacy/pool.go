package privacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/receiptd/receiptd/eventstore"
)

// The key pool. Creating a new subject's key in the key file takes an
// fsynced commit, and a delivery about a new subject would wait for it
// before its own append (its event must never name a key the key store
// could lose). With Options.Log, a Keyring over a FileStore keeps a pool
// of keys created ahead of need, already durable in the key file, and
// gives a new subject one of them at once: the claim (this subject's
// current key is that one) is held in memory and committed in the
// background, in groups, every Options.ClaimInterval.
//
// Until its claim is durable, everything sealed under the key is a claim
// box (claimMagic): it names the subject inside the ciphertext. So a
// crash loses no claim: the claims not yet committed are those handed out
// after the log position each commit records (the log's head read before
// the claims it commits were gathered), and at start NewKeyring reads the
// log after that position, opens the raw body of every event sealed under
// a key still in the pool and commits the claim it names. A pool key no
// event uses stays in the pool: nothing durable was sealed under it.

// ClaimLog is what a Keyring reads of the log to recover the claims a
// crash left uncommitted (an eventstore.Store is one).
type ClaimLog interface {
	Head(ctx context.Context) (eventstore.Position, error)
	ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error)
}

// poolStore is a Store that can keep a key pool (FileStore): only this
// process writes it.
type poolStore interface {
	poolState() (watermark eventstore.Position, pool []Record, err error)
	commitPool(add []Record, claims []poolClaim, orphans []KeyID, watermark eventstore.Position) error
}

// Defaults of the pool's Options: DefaultPoolSize keys or an eighth of
// what Options.CacheBytes holds, whichever is fewer.
const (
	DefaultPoolSize      = 1024
	DefaultClaimInterval = 500 * time.Millisecond
	// idleWatermark: with no claim to commit and a full pool, the
	// recorded log position still moves on this often, so that a
	// recovery reads little of the log.
	idleWatermark = 10 * time.Second
)

// pool is a Keyring's key pool; nil without one.
type pool struct {
	store    poolStore
	log      ClaimLog
	size     int
	interval time.Duration
	logger   *slog.Logger

	// Under Keyring.mu:
	free    []*Key           // durable, no subject's
	pending map[Subject]*Key // claimed, the claim not durable yet

	flushMu   sync.Mutex // one commit at a time
	watermark eventstore.Position
	committed time.Time

	low      chan struct{} // the free keys ran low
	stop     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}
}

// startPool recovers the claims a crash left uncommitted, fills the pool
// and starts committing claims in the background.
func (r *Keyring) startPool(ctx context.Context, ps poolStore, opts Options) error {
	p := &pool{
		store: ps, log: opts.Log, size: opts.PoolSize, interval: opts.ClaimInterval, logger: opts.Logger,
		pending: map[Subject]*Key{}, low: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	if p.size <= 0 {
		// Ready keys are memory too: an eighth of the cache's.
		p.size = min(DefaultPoolSize, max(16, r.maxKeys/8))
	}
	if p.interval <= 0 {
		p.interval = DefaultClaimInterval
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	wm, recs, err := ps.poolState()
	if err != nil {
		return fmt.Errorf("privacy: read the key pool: %w", err)
	}
	free, err := r.recoverClaims(ctx, p, wm, recs)
	if err != nil {
		return err
	}
	p.free = free
	r.pool = p
	if err := r.flush(ctx); err != nil {
		r.pool = nil
		return err
	}
	go r.commitLoop()
	return nil
}

// recoverClaims finds, in the log after wm, the events sealed under a
// key of the pool, commits the claims their claim boxes name, and returns
// the pool's other keys, unwrapped.
func (r *Keyring) recoverClaims(ctx context.Context, p *pool, wm eventstore.Position, recs []Record) ([]*Key, error) {
	suspects := make(map[KeyID]*Key, len(recs))
	for _, rec := range recs {
		k, err := r.unwrapRecord(rec)
		if err != nil {
			return nil, err
		}
		suspects[k.ID] = k
	}
	head := wm
	var (
		claims  []poolClaim
		orphans []KeyID
	)
	for len(suspects) > 0 {
		evs, err := p.log.ReadAll(ctx, head, 1024)
		if err != nil {
			return nil, fmt.Errorf("privacy: recover the key pool's claims: read the log after %s: %w", head, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			head = e.Position
			id, ok := SealedKeyID(e.Body)
			if !ok {
				continue
			}
			k := suspects[id]
			if k == nil {
				continue
			}
			delete(suspects, id)
			_, sub, err := k.open(nil, PurposeBody, e.Body)
			if err == nil && sub.Check() != nil {
				err = errors.New("not a claim box")
			}
			if err != nil {
				// Cannot happen (a pool key's values are claim boxes
				// until its claim is durable); never hand it out again.
				p.logger.Error("privacy: a key of the pool seals an event that names no subject; the key is kept, given to no one",
					"key", id.String(), "position", e.Position.String(), "err", err)
				orphans = append(orphans, id)
				continue
			}
			claims = append(claims, poolClaim{sub: sub, id: id})
		}
	}
	if len(claims)+len(orphans) > 0 {
		if err := p.store.commitPool(nil, claims, orphans, head); err != nil {
			return nil, fmt.Errorf("privacy: recover the key pool's claims: %w", err)
		}
		p.logger.Warn("privacy: recovered the claims on pooled data keys that the last run did not commit", "claims", len(claims), "orphans", len(orphans))
	}
	p.watermark = head
	free := make([]*Key, 0, len(suspects))
	for _, k := range suspects {
		free = append(free, k)
	}
	return free, nil
}

// claim gives s a key of the pool, or nil when the pool is empty. Under
// r.mu.
func (p *pool) claim(s Subject) *Key {
	if len(p.free) < p.size/4 {
		select {
		case p.low <- struct{}{}:
		default:
		}
	}
	if len(p.free) == 0 {
		return nil
	}
	k := p.free[len(p.free)-1]
	p.free[len(p.free)-1] = nil
	p.free = p.free[:len(p.free)-1]
	c := encodeClaim(s)
	k.claim.Store(&c)
	p.pending[s] = k
	return k
}

func (r *Keyring) commitLoop() {
	p := r.pool
	defer close(p.stopped)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.low:
		}
		if err := r.flush(context.Background()); err != nil {
			p.logger.Error("privacy: commit the key pool", "err", err)
		}
	}
}

// flush commits the pending claims, refills the pool, and records the log
// position before them, in one fsynced commit, if there is anything to
// do.
func (r *Keyring) flush(ctx context.Context) error {
	p := r.pool
	if p == nil {
		return nil
	}
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	// The head first: a claim not gathered below is handed out after it,
	// so its events come after it.
	head, err := p.log.Head(ctx)
	if err != nil {
		head = p.watermark // only a longer recovery
	}
	r.mu.Lock()
	claims := make([]poolClaim, 0, len(p.pending))
	keys := make([]*Key, 0, len(p.pending))
	for s, k := range p.pending {
		claims = append(claims, poolClaim{sub: s, id: k.ID})
		keys = append(keys, k)
	}
	need := p.size - len(p.free)
	r.mu.Unlock()
	if len(claims) == 0 && need <= 0 && (head == p.watermark || time.Since(p.committed) < idleWatermark) {
		return nil
	}
	add := make([]Record, 0, need)
	fresh := make([]*Key, 0, need)
	for range need {
		rec, k, err := r.newRecord()
		if err != nil {
			return err
		}
		add = append(add, rec)
		fresh = append(fresh, k)
	}
	if err := p.store.commitPool(add, claims, nil, head); err != nil {
		return fmt.Errorf("privacy: commit %d claims and %d pool keys: %w", len(claims), len(add), err)
	}
	p.watermark, p.committed = head, time.Now()
	r.mu.Lock()
	for i, c := range claims {
		keys[i].claim.Store(nil)
		if p.pending[c.sub] == keys[i] {
			delete(p.pending, c.sub)
		}
	}
	p.free = append(p.free, fresh...)
	r.mu.Unlock()
	return nil
}

// stopPool stops the background commits and commits what is pending.
func (r *Keyring) stopPool() (err error) {
	p := r.pool
	if p == nil {
		return nil
	}
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.stopped
		err = r.flush(context.Background())
	})
	return err
}
