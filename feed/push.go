package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

// Destination is a configured receiver of the feed.
type Destination struct {
	// Name names it in the config, the API, the metrics and the progress
	// file.
	Name string
	// URL is where each event is POSTed.
	URL string
	// Secret signs each request (Standard Webhooks: "whsec_" and base64,
	// as signer.StandardKey takes it).
	Secret []byte
	// Kinds and Sources select the events it receives (empty: all).
	Kinds   []string
	Sources []string
	// Timeout bounds each request (DefaultTimeout if 0).
	Timeout time.Duration
	Retry   Retry
}

// Retry is a destination's retry policy.
type Retry struct {
	// Schedule, if set, is the wait after the first, second… failure in a
	// row; its last wait repeats. Otherwise the waits grow exponentially:
	// Initial (DefaultInitial if 0), doubled after each failure, up to Max
	// (DefaultMax if 0).
	Schedule     []time.Duration
	Initial, Max time.Duration
	// Jitter spreads each wait uniformly over ±Jitter of it (0 to 1;
	// DefaultJitter if negative, none if 0).
	Jitter float64
	// PauseAfter pauses the destination after that many failures in a
	// row (its event goes to the dead letters; resuming retries it). 0:
	// never pause.
	PauseAfter int
	// MaxAttempts, if set, gives up on an event after that many attempts:
	// it goes to the dead letters and the destination goes on with the
	// next. 0: never give up (the default: every event is delivered, in
	// order).
	MaxAttempts int
}

// Defaults of a destination.
const (
	DefaultTimeout = 10 * time.Second
	DefaultInitial = time.Second
	DefaultMax     = 5 * time.Minute
	DefaultJitter  = 0.2
)

// wait is the wait after the n-th failure in a row (n >= 1), before jitter.
func (r Retry) wait(n int) time.Duration {
	if len(r.Schedule) > 0 {
		return r.Schedule[min(n, len(r.Schedule))-1]
	}
	d, max := r.Initial, r.Max
	if d <= 0 {
		d = DefaultInitial
	}
	if max <= 0 {
		max = DefaultMax
	}
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// PusherOptions configure NewPusher. Source, Progress and Render are
// required.
type PusherOptions struct {
	Source   Source
	Progress *Progress
	// Render is an event's request body (the API's JSON of it).
	Render func(context.Context, *Event) ([]byte, error)
	// Client sends the requests; one that follows no redirect (a 3xx is a
	// failure) if nil.
	Client *http.Client
	// Batch is how many events a destination reads at a time
	// (DefaultBatch if 0): what it holds in memory.
	Batch int
	// Registerer, if set, gets the destinations' metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Pusher delivers the feed to its destinations: one goroutine each, one
// request in flight each, so a destination receives its events in
// position order (a retry comes before anything after it). It is safe for
// concurrent use; its admin methods (Pause, Resume, Redeliver) act on a
// running destination at once.
type Pusher struct {
	o       PusherOptions
	dests   []*dest
	latency *prometheus.HistogramVec
}

// dest is one destination's running state.
type dest struct {
	cfg    Destination
	filter Filter
	key    []byte
	url    string // redacted, for showing

	wake chan struct{} // an admin changed something: look again

	mu            sync.Mutex
	state         DestinationState // what Progress holds (Position may run ahead while unsaved)
	saved         uint64           // state.Position as last saved
	gen           uint64           // bumped by Redeliver and Pause: an attempt of an older gen changes nothing
	head          uint64           // the feed's head, as last read
	pendingSince  time.Time        // the RecordedAt of the event it is on; zero when caught up
	attempts      int64
	failures      int64
	consecutive   int
	lastError     string
	lastFailureAt time.Time
	lastSuccessAt time.Time
	nextAttemptAt time.Time
	dead          int
}

// NewPusher returns a pusher for dests, restoring each one's state from
// o.Progress.
func NewPusher(dests []Destination, o PusherOptions) (*Pusher, error) {
	switch {
	case o.Source == nil:
		return nil, errors.New("feed: new pusher: nil Source")
	case o.Progress == nil:
		return nil, errors.New("feed: new pusher: nil Progress")
	case o.Render == nil:
		return nil, errors.New("feed: new pusher: nil Render")
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pusher{o: o}
	for _, d := range dests {
		if err := d.validate(); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(p.dests, func(x *dest) bool { return x.cfg.Name == d.Name }) {
			return nil, fmt.Errorf("feed: destination %q configured twice", d.Name)
		}
		key, _ := signer.StandardKey(d.Secret)
		st, err := o.Progress.Load(d.Name)
		if err != nil {
			return nil, err
		}
		n, err := o.Progress.deadCount(d.Name)
		if err != nil {
			return nil, err
		}
		p.dests = append(p.dests, &dest{
			cfg: d, filter: Filter{Kinds: d.Kinds, Sources: d.Sources}, key: key, url: redact(d.URL),
			wake: make(chan struct{}, 1), state: st, saved: st.Position, dead: n,
		})
	}
	if o.Registerer != nil {
		p.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "receiptd_feed_destination_request_seconds",
			Help:    "Time from sending a feed event to a destination to its answer (or failure), by destination.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"destination"})
		if err := o.Registerer.Register(p.latency); err != nil {
			return nil, fmt.Errorf("feed: new pusher: %w", err)
		}
		if err := o.Registerer.Register(pusherCollector{p}); err != nil {
			return nil, fmt.Errorf("feed: new pusher: %w", err)
		}
	}
	return p, nil
}

func (d Destination) validate() error {
	if d.Name == "" {
		return errors.New("feed: a destination without a name")
	}
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("feed: destination %q: url %q is not an http(s) URL", d.Name, redact(d.URL))
	}
	if _, err := signer.StandardKey(d.Secret); err != nil {
		return fmt.Errorf("feed: destination %q: secret: %w", d.Name, err)
	}
	for _, k := range d.Kinds {
		if !KnownKind(k) {
			return fmt.Errorf("feed: destination %q: unknown kind %q", d.Name, k)
		}
	}
	r := d.Retry
	if r.Jitter > 1 || r.PauseAfter < 0 || r.MaxAttempts < 0 || d.Timeout < 0 || r.Initial < 0 || r.Max < 0 {
		return fmt.Errorf("feed: destination %q: retry or timeout out of range", d.Name)
	}
	for _, w := range r.Schedule {
		if w < 0 {
			return fmt.Errorf("feed: destination %q: a negative wait in the retry schedule", d.Name)
		}
	}
	return nil
}

// redact is a URL without user info or query.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment = nil, "", false, ""
	return p.String()
}

// Run delivers to every destination until ctx ends; it returns nil then.
func (p *Pusher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range p.dests {
		wg.Go(func() { p.run(ctx, d) })
	}
	wg.Wait()
	return nil
}

// run is one destination's loop.
func (p *Pusher) run(ctx context.Context, d *dest) {
	for ctx.Err() == nil {
		d.mu.Lock()
		paused, after, gen := d.state.Paused, d.state.Position, d.gen
		d.mu.Unlock()
		if paused {
			d.setPending(time.Time{})
			select {
			case <-d.wake:
			case <-ctx.Done():
			}
			continue
		}
		events, upTo, err := p.o.Source.ReadFeed(ctx, after, p.o.Batch)
		if err != nil {
			if ctx.Err() == nil {
				p.o.Logger.Error("feed: destination: read the feed", "destination", d.cfg.Name, "after", after, "err", err)
				p.sleep(ctx, d, time.Second)
			}
			continue
		}
		d.mu.Lock()
		d.head = max(d.head, upTo, p.o.Source.FeedHead())
		d.mu.Unlock()
		done := true
		for i := range events {
			e := &events[i]
			if !d.filter.Match(e) {
				if !d.advance(gen, e.Position) {
					done = false
					break
				}
				continue
			}
			if !p.deliver(ctx, d, gen, e) {
				done = false
				break
			}
		}
		if !done {
			continue // paused, redelivered, or stopping
		}
		d.advance(gen, upTo)
		if len(events) == p.o.Batch {
			continue
		}
		// Caught up: save a position moved over filtered-out events, then
		// wait for more (or an admin).
		d.setPending(time.Time{})
		p.save(d)
		wctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() {
			select {
			case <-d.wake:
				cancel()
			case <-stop:
			}
		}()
		err = p.o.Source.WaitFeed(wctx, upTo)
		close(stop)
		cancel()
		if err != nil && ctx.Err() == nil && wctx.Err() == nil {
			p.o.Logger.Error("feed: destination: wait for the feed", "destination", d.cfg.Name, "err", err)
			p.sleep(ctx, d, time.Second)
		}
	}
	p.save(d)
}

// advance moves d's position (unsaved) to pos, unless an admin changed it
// since gen; it reports whether it did.
func (d *dest) advance(gen, pos uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return false
	}
	d.state.Position = max(d.state.Position, pos)
	return true
}

func (d *dest) setPending(t time.Time) {
	d.mu.Lock()
	d.pendingSince = t
	d.mu.Unlock()
}

// save makes d's state durable if its position moved since the last save.
func (p *Pusher) save(d *dest) {
	d.mu.Lock()
	st, dirty := d.state, d.state.Position != d.saved
	d.mu.Unlock()
	if !dirty {
		return
	}
	if err := p.o.Progress.Save(d.cfg.Name, st); err != nil {
		p.o.Logger.Error("feed: destination: save progress", "destination", d.cfg.Name, "err", err)
		return
	}
	d.mu.Lock()
	d.saved = max(d.saved, st.Position)
	d.mu.Unlock()
}

// sleep waits for dur, an admin's change, or ctx.
func (p *Pusher) sleep(ctx context.Context, d *dest, dur time.Duration) {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.wake:
	case <-ctx.Done():
	}
}

// deliver sends e to d until it is answered 2xx (true), or d is paused,
// redelivered or stopped (false), or gives up on it (true: go on).
func (p *Pusher) deliver(ctx context.Context, d *dest, gen uint64, e *Event) bool {
	d.setPending(e.RecordedAt)
	body, renderErr := p.o.Render(ctx, e)
	for tries := 1; ; tries++ {
		d.mu.Lock()
		stale := d.gen != gen || d.state.Paused
		d.mu.Unlock()
		if stale || ctx.Err() != nil {
			return false
		}
		err := renderErr
		start := p.o.Now()
		if err == nil {
			err = p.send(ctx, d, e, body)
		}
		elapsed := p.o.Now().Sub(start)
		if p.latency != nil && renderErr == nil {
			p.latency.WithLabelValues(d.cfg.Name).Observe(elapsed.Seconds())
		}
		if ctx.Err() != nil {
			return false // stopping: the attempt's outcome does not count
		}
		now := p.o.Now()
		d.mu.Lock()
		d.attempts++
		if err == nil {
			d.consecutive, d.lastSuccessAt, d.nextAttemptAt = 0, now, time.Time{}
			ok := d.gen == gen
			if ok {
				d.state.Position = max(d.state.Position, e.Position)
			}
			d.mu.Unlock()
			if ok {
				p.save(d) // durable before the next event goes
			}
			return ok
		}
		d.failures++
		d.consecutive++
		d.lastError, d.lastFailureAt = err.Error(), now
		consecutive := d.consecutive
		d.mu.Unlock()
		r := d.cfg.Retry
		switch {
		case r.MaxAttempts > 0 && tries >= r.MaxAttempts:
			p.deadLetter(d, e, tries, err, DeadSkipped)
			p.o.Logger.Warn("feed: destination: gave up on an event", "destination", d.cfg.Name, "position", e.Position, "id", e.ID, "attempts", tries, "err", err)
			return d.advance(gen, e.Position)
		case r.PauseAfter > 0 && consecutive >= r.PauseAfter:
			p.deadLetter(d, e, tries, err, DeadPaused)
			reason := fmt.Sprintf("%d failures in a row", consecutive)
			p.o.Logger.Warn("feed: destination paused", "destination", d.cfg.Name, "position", e.Position, "id", e.ID, "reason", reason, "err", err)
			d.mu.Lock()
			if d.gen == gen {
				d.state.Paused, d.state.PausedReason = true, reason
				d.nextAttemptAt = time.Time{}
			}
			st := d.state
			d.mu.Unlock()
			if err := p.o.Progress.Save(d.cfg.Name, st); err != nil {
				p.o.Logger.Error("feed: destination: save progress", "destination", d.cfg.Name, "err", err)
			}
			return false
		}
		wait := jitter(r.wait(consecutive), r.Jitter)
		d.mu.Lock()
		d.nextAttemptAt = now.Add(wait)
		d.mu.Unlock()
		p.sleep(ctx, d, wait)
	}
}

// jitter spreads w uniformly over ±j of it.
func jitter(w time.Duration, j float64) time.Duration {
	if j < 0 {
		j = DefaultJitter
	}
	if j == 0 || w <= 0 {
		return w
	}
	return time.Duration(float64(w) * (1 - j + 2*j*rand.Float64()))
}

// send POSTs one event, signed, and returns nil for a 2xx answer.
func (p *Pusher) send(ctx context.Context, d *dest, e *Event, body []byte) error {
	timeout := d.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := p.o.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "receiptd-feed/1")
	req.Header.Set("webhook-id", e.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", signer.Standard(d.key, e.ID, ts, body))
	resp, err := p.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a credential
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("no answer within %v", timeout)
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New(resp.Status)
	}
	return nil
}

// deadLetter records e as a dead letter of d.
func (p *Pusher) deadLetter(d *dest, e *Event, attempts int, cause error, outcome string) {
	dl := DeadLetter{Position: e.Position, EventID: e.ID, Kind: e.Kind, Attempts: attempts, LastError: cause.Error(), At: p.o.Now().UTC(), Outcome: outcome}
	if err := p.o.Progress.AddDeadLetter(d.cfg.Name, dl); err != nil {
		p.o.Logger.Error("feed: destination: record a dead letter", "destination", d.cfg.Name, "err", err)
		return
	}
	if n, err := p.o.Progress.deadCount(d.cfg.Name); err == nil {
		d.mu.Lock()
		d.dead = n
		d.mu.Unlock()
	}
}

func (p *Pusher) dest(name string) (*dest, error) {
	for _, d := range p.dests {
		if d.cfg.Name == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("destination %q: %w", name, ErrUnknownDestination)
}

// change applies an admin's change to a destination, saves it and wakes
// its loop.
func (p *Pusher) change(name string, fn func(d *dest)) (DestinationStatus, error) {
	d, err := p.dest(name)
	if err != nil {
		return DestinationStatus{}, err
	}
	d.mu.Lock()
	fn(d)
	d.gen++
	st := d.state
	d.mu.Unlock()
	if err := p.o.Progress.Save(name, st); err != nil {
		return DestinationStatus{}, err
	}
	d.mu.Lock()
	d.saved = st.Position
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return p.status(d), nil
}

// Pause stops a destination's deliveries until Resume (a request in
// flight finishes; its answer no longer moves the position).
func (p *Pusher) Pause(_ context.Context, name string) (DestinationStatus, error) {
	return p.change(name, func(d *dest) {
		d.state.Paused, d.state.PausedReason = true, "admin"
		d.nextAttemptAt = time.Time{}
	})
}

// Resume resumes a paused destination: it tries its next event at once.
func (p *Pusher) Resume(_ context.Context, name string) (DestinationStatus, error) {
	return p.change(name, func(d *dest) {
		d.state.Paused, d.state.PausedReason = false, ""
		d.consecutive, d.nextAttemptAt = 0, time.Time{}
	})
}

// Redeliver sets a destination's position to after: it delivers every
// event it receives after it again (or skips ahead). A paused destination
// stays paused.
func (p *Pusher) Redeliver(_ context.Context, name string, after uint64) (DestinationStatus, error) {
	return p.change(name, func(d *dest) {
		d.state.Position = after
		d.consecutive, d.nextAttemptAt = 0, time.Time{}
	})
}

// DeadLetters returns a destination's dead letters, newest first.
func (p *Pusher) DeadLetters(_ context.Context, name string) ([]DeadLetter, error) {
	if _, err := p.dest(name); err != nil {
		return nil, err
	}
	return p.o.Progress.DeadLetters(name)
}

// Statuses returns every destination's status, in configuration order.
func (p *Pusher) Statuses(context.Context) ([]DestinationStatus, error) {
	out := make([]DestinationStatus, 0, len(p.dests))
	for _, d := range p.dests {
		out = append(out, p.status(d))
	}
	return out, nil
}

func (p *Pusher) status(d *dest) DestinationStatus {
	head := p.o.Source.FeedHead()
	d.mu.Lock()
	defer d.mu.Unlock()
	head = max(head, d.head)
	s := DestinationStatus{
		Name: d.cfg.Name, URL: d.url, Kinds: slices.Clone(d.cfg.Kinds), Sources: slices.Clone(d.cfg.Sources),
		Paused: d.state.Paused, PausedReason: d.state.PausedReason,
		Delivered: d.state.Position, Head: head,
		Attempts: d.attempts, Failures: d.failures, Consecutive: d.consecutive,
		LastError: d.lastError, LastFailureAt: d.lastFailureAt, LastSuccessAt: d.lastSuccessAt,
		NextAttemptAt: d.nextAttemptAt, DeadLetters: d.dead,
	}
	if lp, lh := LogPosition(d.state.Position), LogPosition(head); lh > lp {
		s.LagPositions = lh - lp
	}
	if !d.pendingSince.IsZero() {
		s.Lag = max(0, p.o.Now().Sub(d.pendingSince))
	}
	return s
}
