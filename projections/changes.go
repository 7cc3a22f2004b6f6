package projections

// Watchers learn which views changed from the batches the DB applied: each
// batch remembers the keys of the views it touched, for the latest
// touchRingSize batches, so a watcher re-reads its view only when a batch
// touched it. Memory is bounded: a batch that touched more than
// maxTouchedKeys views is remembered as touching everything, and a watcher
// whose moment is older than the oldest remembered batch re-reads.
const (
	touchRingSize  = 64
	maxTouchedKeys = 2048
)

// batchTouch is one applied batch: the events after commit position after,
// up to and including upTo, touched keys (nil: maybe every view).
type batchTouch struct {
	after, upTo uint64
	keys        map[Key]struct{}
}

// touchRing holds the latest touchRingSize batches, oldest first.
type touchRing struct {
	batches []batchTouch
}

func (r *touchRing) push(after, upTo uint64, keys map[Key]struct{}) {
	if len(r.batches) == touchRingSize {
		copy(r.batches, r.batches[1:])
		r.batches = r.batches[:touchRingSize-1]
	}
	r.batches = append(r.batches, batchTouch{after: after, upTo: upTo, keys: keys})
}

func (r *touchRing) reset() { r.batches = nil }

// touchedSince reports whether a batch applied after commit position since
// (the read models being at now) may have touched k.
func (r *touchRing) touchedSince(since, now uint64, k Key) bool {
	if since >= now {
		return false
	}
	for i := len(r.batches) - 1; i >= 0; i-- {
		b := r.batches[i]
		if b.upTo <= since {
			return false // every batch after since was looked at
		}
		if b.keys == nil {
			return true
		}
		if _, ok := b.keys[k]; ok {
			return true
		}
		if b.after <= since {
			return false
		}
	}
	return true // the batches right after since are forgotten
}
