package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/privacy"
)

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// Source is a configured webhook source, for the Send test event page.
type Source struct {
	Name, Kind string
	// Key signs test events: the first secret (reewild, reusely,
	// standard) or token (reward, retm). Nil: the page cannot sign for
	// this source (reap: receiptd holds only public keys).
	Key []byte
	// Algorithm and Encoding of a reusely source's signature ("" for the
	// defaults).
	Algorithm, Encoding string
}

// Log is the part of the event log the console reads.
type Log interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error)
	Subscribe(ctx context.Context, after eventstore.Position, handle func(context.Context, []eventstore.RecordedEvent) error) error
	Head(ctx context.Context) (eventstore.Position, error)
}

// Status is what the Health page shows.
type Status struct {
	Version   string
	StoreKind string
	// StoreErr is why the store is not ready to take appends, or nil.
	StoreErr error
	// Head is the log's last position; Checkpoint the read models'.
	Head, Checkpoint eventstore.Position
	HeadErr          error
	// Models are the read models the runner applies, every one in the same
	// transaction at Checkpoint.
	Models  []string
	Started time.Time
}

// Options configure New. Conn, Auth, Log, Gatherer, Status and WebhookURL
// are required.
type Options struct {
	// Conn reaches the query API (receiptd.v1).
	Conn grpc.ClientConnInterface
	// Auth checks the API key an operator signs in with.
	Auth api.Authenticator
	// Log is read for the Live feed and the raw bodies of a receipt's
	// events.
	Log Log
	// Keys opens the raw bodies sealed under a person's data key (a
	// privacy.Keyring); nil when privacy is off. A body whose key was
	// destroyed shows as forgotten.
	Keys privacy.Opener
	// Gatherer holds receiptd_webhook_deliveries_total.
	Gatherer prometheus.Gatherer
	Status   func(context.Context) Status
	// Sources are the configured sources, the default first.
	Sources []Source
	// WebhookURL returns this server's HTTP base URL ("http://127.0.0.1:8080").
	WebhookURL func() string
	// WebhookClient sends the "Send test event" deliveries to WebhookURL;
	// nil means a plain client with a 10 s timeout. (With TLS on the
	// listener, cmd/receiptd gives one that trusts its certificate.)
	WebhookClient *http.Client
	// SecureCookie marks the session cookie Secure on every request, not
	// only on one that came over TLS: the console is reached over HTTPS
	// through a proxy that terminates TLS (config tls.behind_proxy).
	SecureCookie bool
	// Examples holds {kind}/{name}.json payloads.
	Examples fs.FS
	// SessionTTL bounds a session (default 12h).
	SessionTTL time.Duration
	// SampleEvery is the period of the delivery counters' samples
	// (default one minute); SampleCount how many are kept (default 60).
	SampleEvery time.Duration
	SampleCount int
	// Lifetime ends the event streams when the server shuts down.
	Lifetime context.Context
	Logger   *slog.Logger
}

// Console serves the pages. Create it with New, mount Handler at Prefix and
// run Run for as long as the server runs.
type Console struct {
	o        Options
	api      receiptdv1.ReceiptServiceClient
	audit    receiptdv1.AuditServiceClient
	privacy  receiptdv1.PrivacyServiceClient
	feedAPI  receiptdv1.FeedServiceClient
	pages    map[string]*template.Template
	static   http.Handler
	sessions *sessions
	feed     *feed
	samples  *sampler
	client   *http.Client
	logins   *ratelimit.Keyed // sign-in attempts per client address

	mu      sync.Mutex
	started bool
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New checks the options and parses the templates.
func New(o Options) (*Console, error) {
	switch {
	case o.Conn == nil, o.Auth == nil, o.Log == nil, o.Gatherer == nil, o.Status == nil, o.WebhookURL == nil:
		return nil, errors.New("console: new: a required option is nil")
	case o.SessionTTL < 0, o.SampleEvery < 0, o.SampleCount < 0:
		return nil, errors.New("console: new: a negative option")
	}
	o.SessionTTL = cmp.Or(o.SessionTTL, 12*time.Hour)
	o.SampleEvery = cmp.Or(o.SampleEvery, time.Minute)
	o.SampleCount = cmp.Or(o.SampleCount, 60)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Lifetime == nil {
		o.Lifetime = context.Background()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("console: new: %w", err)
	}
	logins, err := ratelimit.New(loginPerSecond, loginBurst, 0)
	if err != nil {
		return nil, fmt.Errorf("console: new: %w", err)
	}
	static, _ := fs.Sub(staticFS, "static")
	return &Console{
		o:        o,
		api:      receiptdv1.NewReceiptServiceClient(o.Conn),
		audit:    receiptdv1.NewAuditServiceClient(o.Conn),
		privacy:  receiptdv1.NewPrivacyServiceClient(o.Conn),
		feedAPI:  receiptdv1.NewFeedServiceClient(o.Conn),
		pages:    pages,
		static:   http.StripPrefix(Prefix+"static/", http.FileServerFS(static)),
		sessions: newSessions(key, o.SessionTTL),
		feed:     newFeed(100),
		samples:  newSampler(o.Gatherer, o.SampleCount),
		client:   cmp.Or(o.WebhookClient, &http.Client{Timeout: 10 * time.Second}),
		logins:   logins,
	}, nil
}

// Run follows the log for the Live page and samples the delivery counters
// until ctx ends. It returns ctx's error, or the log subscription's.
func (c *Console) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("console: run: already running")
	}
	c.started = true
	c.mu.Unlock()

	c.samples.sample(time.Now())
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		t := time.NewTicker(c.o.SampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				c.samples.sample(now)
			}
		}
	})
	return c.feed.follow(ctx, c.o.Log, c.o.Logger)
}

// Handler returns the console's routes, to mount at Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+Prefix+"static/", c.static)
	mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	mux.HandleFunc("POST "+Prefix+"login", c.login)
	mux.HandleFunc("POST "+Prefix+"logout", c.action(c.logout))
	mux.HandleFunc("GET "+Prefix+"{$}", c.page(c.livePage))
	mux.HandleFunc("GET "+Prefix+"live/events", c.stream(c.liveEvents))
	mux.HandleFunc("GET "+Prefix+"find", c.page(c.find))
	mux.HandleFunc("GET "+Prefix+"receipts/{source}/{id}", c.page(c.receiptPage))
	mux.HandleFunc("GET "+Prefix+"receipts/{source}/{id}/events/{revision}/raw", c.page(c.receiptRaw))
	mux.HandleFunc("GET "+Prefix+"users/{source}/{id}", c.page(c.userPage))
	mux.HandleFunc("GET "+Prefix+"users/{source}/{id}/export", c.page(c.exportUser))
	mux.HandleFunc("GET "+Prefix+"users/{source}/{id}/forget", c.page(c.forgetPage))
	mux.HandleFunc("POST "+Prefix+"users/{source}/{id}/forget", c.action(c.forgetUser))
	mux.HandleFunc("GET "+Prefix+"deliveries", c.page(c.deliveriesPage))
	mux.HandleFunc("GET "+Prefix+"deliveries/{source}/{position}/raw", c.page(c.quarantineRaw))
	mux.HandleFunc("POST "+Prefix+"deliveries/reprocess", c.action(c.reprocess))
	mux.HandleFunc("GET "+Prefix+"health", c.page(c.healthPage))
	mux.HandleFunc("GET "+Prefix+"overdue", c.page(c.overduePage))
	mux.HandleFunc("POST "+Prefix+"destinations/{name}/{action}", c.action(c.destinationAction))
	mux.HandleFunc("GET "+Prefix+"send", c.page(c.sendPage))
	mux.HandleFunc("POST "+Prefix+"send", c.action(c.send))
	return securityHeaders(mux)
}

// securityHeaders: no framing, no sniffing, and only this origin's own
// scripts, styles and connections (nothing is loaded from anywhere else).
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
