package privacy

import "context"

// Crash stops r's background commits without committing the claims
// pending and closes its store: the key file as a crash leaves it.
func (r *Keyring) Crash() {
	if p := r.pool; p != nil {
		p.stopOnce.Do(func() {
			close(p.stop)
			<-p.stopped
		})
	}
	r.store.Close()
}

// Flush commits the pool's pending claims now.
func (r *Keyring) Flush() error { return r.flush(context.Background()) }
