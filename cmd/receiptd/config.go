package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/receiptd/receiptd/handlers/api"
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
	GRPC    GRPCConfig     `yaml:"grpc"`
	Access  *AccessConfig  `yaml:"access"`
	Console ConsoleConfig  `yaml:"console"`
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
}

// IngestConfig tunes POST /webhooks/{source}.
type IngestConfig struct {
	// MaxBodyBytes answers 413 above it (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// StoreDeadline is how long a delivery may wait for its append to be
	// durable before 503 (default 3s, well inside providers' 5s).
	StoreDeadline Duration `yaml:"store_deadline"`
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

// GRPCConfig bounds the gRPC server (--grpc-addr, and the REST gateway's
// in-process connection to it).
type GRPCConfig struct {
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

// minSendMsgBytes is the smallest answer limit that holds every answer the
// server may send: a full quarantine page plus one delivery at ingest's
// body limit, and room for the fields around them.
func (c *Config) minSendMsgBytes() int64 {
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

// AddFlags registers the serve flags on fs.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded store and the read models")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "listen address for webhooks, REST, health and metrics")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":9090", "listen address for gRPC")
	fs.StringVar(&c.File, "config", "", "YAML config file (sources, store, limits)")
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
	if c.GRPC.MaxRecvMsgBytes == 0 {
		c.GRPC.MaxRecvMsgBytes = 64 << 10
	}
	if c.GRPC.MaxSendMsgBytes == 0 {
		c.GRPC.MaxSendMsgBytes = int(max(16<<20, c.minSendMsgBytes()))
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
	if c.GRPC.MaxRecvMsgBytes < 1<<10 {
		errs = append(errs, errors.New("grpc: max_recv_msg_bytes must be at least 1024"))
	}
	if need := c.minSendMsgBytes(); int64(c.GRPC.MaxSendMsgBytes) < need {
		errs = append(errs, fmt.Errorf("grpc: max_send_msg_bytes %d is less than the largest answer, a quarantine page with a delivery at ingest.max_body_bytes: at least %d", c.GRPC.MaxSendMsgBytes, need))
	}
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
		errs = append(errs, c.Access.validate(querySources(*c))...)
	}
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
