package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/bytesize"
	"github.com/receiptd/receiptd/internal/membudget"
)

// Config is everything `receiptd serve` runs with: flags first, then the
// YAML file named by --config.
type Config struct {
	DataDir  string `yaml:"-"`
	HTTPAddr string `yaml:"-"`
	GRPCAddr string `yaml:"-"`
	File     string `yaml:"-"`

	Store   StoreConfig    `yaml:"store"`
	Sources []SourceConfig `yaml:"sources"`
	Ingest  IngestConfig   `yaml:"ingest"`
	Query   QueryConfig    `yaml:"query"`
	HTTP    HTTPConfig     `yaml:"http"`
	TLS     TLSConfig      `yaml:"tls"`
	GRPC    GRPCConfig     `yaml:"grpc"`
	Access  *AccessConfig  `yaml:"access"`
	Console ConsoleConfig  `yaml:"console"`
	Privacy *PrivacyConfig `yaml:"privacy"`
	// Destinations receive the feed as signed webhooks (feed.go).
	Destinations []DestinationConfig `yaml:"destinations"`
	// MemoryBudget bounds the process's anonymous memory (Go heap,
	// stacks, runtime): the Go runtime's memory limit is set from it, and
	// the caches share it (internal/membudget). The pages of the files
	// the process maps (the log, the read models) are kept under half of
	// it besides. Default membudget.Default (256 MiB).
	MemoryBudget bytesize.Size `yaml:"memory_budget"`
}

// ConsoleConfig turns on the operator console at /ui/ (handlers/console).
// It is an admin surface: it needs an access section with at least one API
// key holding the admin scope, which an operator signs in with.
type ConsoleConfig struct {
	Enabled bool `yaml:"enabled"`
	// SessionTTL bounds a sign-in (default 12h).
	SessionTTL Duration `yaml:"session_ttl"`
	// SampleEvery is the period of the Deliveries chart (default 1m); one
	// hour of samples is kept, in memory.
	SampleEvery Duration `yaml:"sample_every"`
}

// StoreConfig chooses the log.
type StoreConfig struct {
	// Kind is "embedded" (default) or "kurrentdb".
	Kind string `yaml:"kind"`
	// URL is the KurrentDB connection string (esdb://…).
	URL string `yaml:"url"`
}

// SourceConfig is one provider account that may POST to /webhooks/{name}.
type SourceConfig struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// Secrets (reewild, reusely, standard), Tokens (reward, retm) and
	// PublicKeys (reap) are literals, env:NAME or file:PATH. Several may be
	// active at once, for rotation.
	Secrets    []string `yaml:"secrets"`
	Tokens     []string `yaml:"tokens"`
	PublicKeys []string `yaml:"public_keys"`
	// Tolerance bounds the age of a signed timestamp (reusely, standard).
	Tolerance Duration `yaml:"tolerance"`
	// Algorithm and Encoding of a keyed signature where the provider leaves
	// them open (reusely: hmac-sha256 / hex by default).
	Algorithm string `yaml:"algorithm"`
	Encoding  string `yaml:"encoding"`
	// AllowIPs, if set, limits deliveries to these addresses or CIDR
	// prefixes (token-authenticated sources: reward, retm).
	AllowIPs []string `yaml:"allow_ips"`
	// Merchant, if set, must equal the business reference a RETM delivery
	// names (one RETM source per merchant install).
	Merchant string `yaml:"merchant"`
	// UserNamespace joins this source's user ids to another source's: its
	// credits count in that source's balances (reward credits to Reewild
	// users). Default: the source itself.
	UserNamespace string `yaml:"user_namespace"`
	// Currency of a RETM merchant's amounts, and the time zone its
	// zone-less timestamps are in (an IANA name; default UTC).
	Currency string `yaml:"currency"`
	Timezone string `yaml:"timezone"`
	// Category is the stream category of a standard source's entities
	// (default "entity"); EntityField and StatusField are dotted paths from
	// the top of the JSON body to the entity id and its status (defaults
	// "data.id" and "data.status").
	Category    string `yaml:"category"`
	EntityField string `yaml:"entity_field"`
	StatusField string `yaml:"status_field"`
	// Insecure accepts deliveries without verification. Development only;
	// a source with no verifier configured refuses to start without it.
	Insecure bool `yaml:"insecure"`
	// OverdueAfter is the source's whole retry window: a receipt still in
	// progress this long after its first recorded delivery is overdue
	// (default 23h5m, Reewild's last retry after the first attempt; 0
	// turns it off for the source).
	OverdueAfter *Duration `yaml:"overdue_after"`
}

// IngestConfig tunes POST /webhooks/{source}.
type IngestConfig struct {
	// MaxBodyBytes answers 413 above it (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// StoreDeadline is how long a delivery may wait for its append to be
	// durable before 503 (default 3s, well inside providers' 5s).
	StoreDeadline Duration `yaml:"store_deadline"`
	// DecisionCacheBytes bounds the decision state kept of recently used
	// streams (see webhook.Options.DecisionCacheBytes). Default: its
	// share of memory_budget (1/32: 8 MiB of 256 MiB).
	DecisionCacheBytes int64 `yaml:"decision_cache_bytes"`
}

// QueryConfig tunes the query API.
type QueryConfig struct {
	// MaxWait bounds how long a query with min_position waits (default 2s).
	MaxWait Duration `yaml:"max_wait"`
	// MaxBodyBytes bounds a REST request body under /v1/ (default 64 KiB,
	// api.DefaultMaxBodyBytes; 413 beyond). The largest body the API takes
	// is a few dozen bytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// HTTPConfig bounds the HTTP listener (--http-addr: webhooks, REST, the
// console, health, metrics).
type HTTPConfig struct {
	// MaxConnections bounds the connections open at once (default 1024);
	// past it a new connection is closed at once (and counted in
	// receiptd_connections_refused_total).
	MaxConnections int `yaml:"max_connections"`
	// ReadHeaderTimeout bounds reading a request's headers (default 10s),
	// ReadTimeout the whole request with its body (default 30s),
	// WriteTimeout the answer (default 60s; watches, audits and rebuilds
	// lift both once their caller is checked and their body read, and
	// bound each write instead), IdleTimeout a keep-alive connection
	// between requests (default 120s).
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers (default 64 KiB; 431).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConcurrentStreams bounds the requests at once on one HTTP/2
	// connection (with TLS; default 100).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
}

// GRPCConfig bounds the gRPC server (--grpc-addr, and the REST gateway's
// in-process connection to it where said).
type GRPCConfig struct {
	// MaxConnections bounds the connections open at once on --grpc-addr
	// (default 256; a gRPC client multiplexes its calls on one); past it a
	// new connection is closed at once.
	MaxConnections int `yaml:"max_connections"`
	// MaxConcurrentStreams bounds the calls at once on one connection
	// (default 100); a client's further calls wait for one to end. Not on
	// the REST gateway's connection, which every REST request shares
	// (max_connections of http: bounds those).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// HandshakeTimeout bounds how long a new connection may take to
	// finish its TLS handshake and HTTP/2 preface (default 10s): a raw
	// connection that sends nothing is closed then.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// MaxConnectionIdle closes a connection with no call for this long
	// (default 5m). MaxConnectionAge closes any connection this old
	// (default 2h), after MaxConnectionAgeGrace for the calls in flight
	// (default 1m): a watch is then ended UNAVAILABLE, and its client
	// reconnects. Left out (or 0), each gets its default; a very long
	// duration (8760h) turns one off in effect.
	MaxConnectionIdle     Duration `yaml:"max_connection_idle"`
	MaxConnectionAge      Duration `yaml:"max_connection_age"`
	MaxConnectionAgeGrace Duration `yaml:"max_connection_age_grace"`
	// KeepaliveTime is how long a connection may be quiet before the
	// server pings it (default 2m), KeepaliveTimeout how long the server
	// waits for the answer before it closes the connection (default 20s):
	// dead clients do not hold connections.
	KeepaliveTime    Duration `yaml:"keepalive_time"`
	KeepaliveTimeout Duration `yaml:"keepalive_timeout"`
	// MinPingInterval is the enforcement policy: a client that pings more
	// often than this (default 1m), or at all while it has no call open
	// (unless PermitPingWithoutCalls), is sent GOAWAY ("too_many_pings")
	// and disconnected.
	MinPingInterval        Duration `yaml:"min_ping_interval"`
	PermitPingWithoutCalls bool     `yaml:"permit_ping_without_calls"`
	// MaxRecvMsgBytes bounds a request message (default 64 KiB; the largest
	// request of the API is a few hundred bytes). RESOURCE_EXHAUSTED beyond.
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes"`
	// MaxSendMsgBytes bounds an answer message (default 16 MiB). The
	// largest answer is a quarantine page: 4 MiB (api.MaxQuarantinePageBytes)
	// plus one delivery of up to ingest.max_body_bytes, so it must be at
	// least that plus 64 KiB. The REST gateway's connection receives up to
	// this much.
	MaxSendMsgBytes int `yaml:"max_send_msg_bytes"`
}

// MinSendMsgBytes is the smallest answer limit that holds every answer the
// server may send: a full quarantine page plus one delivery at ingest's
// body limit, and room for the fields around them.
func (c *Config) MinSendMsgBytes() int64 {
	return api.MaxQuarantinePageBytes + c.Ingest.MaxBodyBytes + 64<<10
}

// Duration is a time.Duration written as "10m", "3s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %s", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// Load reads the YAML file named by c.File, if any, then applies defaults
// and validates.
func (c *Config) Load() error {
	if c.File != "" {
		raw, err := os.ReadFile(c.File)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // an empty file is an empty config
			return fmt.Errorf("config %s: %w", c.File, err)
		}
	}
	c.defaults()
	return c.Validate()
}

func (c *Config) defaults() {
	if c.Store.Kind == "" {
		c.Store.Kind = "embedded"
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = membudget.Default
	}
	if c.Ingest.MaxBodyBytes == 0 {
		c.Ingest.MaxBodyBytes = 1 << 20
	}
	if c.Ingest.StoreDeadline == 0 {
		c.Ingest.StoreDeadline = Duration(3 * time.Second)
	}
	if c.Query.MaxWait == 0 {
		c.Query.MaxWait = Duration(2 * time.Second)
	}
	if c.Query.MaxBodyBytes == 0 {
		c.Query.MaxBodyBytes = api.DefaultMaxBodyBytes
	}
	defaultDuration := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defaultInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defaultInt(&c.HTTP.MaxConnections, 1024)
	defaultDuration(&c.HTTP.ReadHeaderTimeout, 10*time.Second)
	defaultDuration(&c.HTTP.ReadTimeout, 30*time.Second)
	defaultDuration(&c.HTTP.WriteTimeout, 60*time.Second)
	defaultDuration(&c.HTTP.IdleTimeout, 120*time.Second)
	defaultInt(&c.HTTP.MaxHeaderBytes, 64<<10)
	defaultInt(&c.HTTP.MaxConcurrentStreams, 100)
	defaultInt(&c.GRPC.MaxConnections, 256)
	defaultInt(&c.GRPC.MaxConcurrentStreams, 100)
	defaultDuration(&c.GRPC.HandshakeTimeout, 10*time.Second)
	defaultDuration(&c.GRPC.MaxConnectionIdle, 5*time.Minute)
	defaultDuration(&c.GRPC.MaxConnectionAge, 2*time.Hour)
	defaultDuration(&c.GRPC.MaxConnectionAgeGrace, time.Minute)
	defaultDuration(&c.GRPC.KeepaliveTime, 2*time.Minute)
	defaultDuration(&c.GRPC.KeepaliveTimeout, 20*time.Second)
	defaultDuration(&c.GRPC.MinPingInterval, time.Minute)
	if c.GRPC.MaxRecvMsgBytes == 0 {
		c.GRPC.MaxRecvMsgBytes = 64 << 10
	}
	if c.GRPC.MaxSendMsgBytes == 0 {
		c.GRPC.MaxSendMsgBytes = int(max(16<<20, c.MinSendMsgBytes()))
	}
}

// Validate reports every problem with the config at once.
func (c *Config) Validate() error {
	var errs []error
	switch c.Store.Kind {
	case "embedded":
	case "kurrentdb":
		if c.Store.URL == "" {
			errs = append(errs, errors.New("store: kind kurrentdb needs a url"))
		}
	default:
		errs = append(errs, fmt.Errorf("store: unknown kind %q (embedded or kurrentdb)", c.Store.Kind))
	}
	if c.Ingest.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("ingest: max_body_bytes must be positive"))
	}
	if c.Query.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("query: max_body_bytes must be positive"))
	}
	for _, f := range []struct {
		name string
		n    int
	}{
		{"http: max_connections", c.HTTP.MaxConnections}, {"http: max_header_bytes", c.HTTP.MaxHeaderBytes},
		{"http: max_concurrent_streams", c.HTTP.MaxConcurrentStreams},
		{"grpc: max_connections", c.GRPC.MaxConnections}, {"grpc: max_concurrent_streams", c.GRPC.MaxConcurrentStreams},
	} {
		if f.n < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", f.name))
		}
	}
	if c.HTTP.MaxHeaderBytes < 4<<10 && c.HTTP.MaxHeaderBytes >= 1 {
		errs = append(errs, errors.New("http: max_header_bytes must be at least 4096"))
	}
	if c.GRPC.KeepaliveTime < Duration(time.Second) {
		errs = append(errs, errors.New("grpc: keepalive_time must be at least 1s"))
	}
	errs = append(errs, c.TLS.Validate()...)
	if c.GRPC.MaxRecvMsgBytes < 1<<10 {
		errs = append(errs, errors.New("grpc: max_recv_msg_bytes must be at least 1024"))
	}
	if need := c.MinSendMsgBytes(); int64(c.GRPC.MaxSendMsgBytes) < need {
		errs = append(errs, fmt.Errorf("grpc: max_send_msg_bytes %d is less than the largest answer, a quarantine page with a delivery at ingest.max_body_bytes: at least %d", c.GRPC.MaxSendMsgBytes, need))
	}
	if c.Ingest.DecisionCacheBytes < 0 {
		errs = append(errs, errors.New("ingest: decision_cache_bytes must be positive"))
	}
	errs = append(errs, c.validateMemory()...)
	seen := map[string]bool{}
	for i, s := range c.Sources {
		where := fmt.Sprintf("sources[%d] (%s)", i, s.Name)
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("sources[%d]: no name", i))
		case strings.ContainsAny(s.Name, ".-/ \x00"):
			errs = append(errs, fmt.Errorf("%s: a source name may not contain '.', '-', '/', space or NUL", where))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate source name", where))
		}
		seen[s.Name] = true
		if !knownKinds[s.Kind] {
			errs = append(errs, fmt.Errorf("%s: unknown kind %q", where, s.Kind))
		}
	}
	if c.Access != nil {
		errs = append(errs, c.Access.validate(c.QuerySources())...)
	}
	if c.Privacy != nil {
		errs = append(errs, c.Privacy.validate()...)
	}
	errs = append(errs, c.validateDestinations()...)
	if c.Console.Enabled && !c.Access.hasAdminKey() {
		errs = append(errs, errors.New("console: enabled, but no API key in the access section holds the admin scope: the console is an admin surface and signs operators in with such a key"))
	}
	return errors.Join(errs...)
}

// knownKinds lists the provider kinds this build can verify.
var knownKinds = map[string]bool{"reewild": true, "reward": true, "reusely": true, "reap": true, "retm": true, "standard": true}

// hasAdminKey reports whether an API key holds the admin scope.
func (a *AccessConfig) hasAdminKey() bool {
	if a == nil {
		return false
	}
	for _, k := range a.APIKeys {
		if slices.Contains(k.Scopes, string(api.ScopeAdmin)) {
			return true
		}
	}
	return false
}

// QuerySources lists the sources the query API serves, the default first.
// With none configured, queries default to the primary provider's usual name.
func (c *Config) QuerySources() []string {
	var names []string
	for _, s := range c.Sources {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		names = []string{"reewild"}
	}
	return names
}
