package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
	"github.com/receiptd/receiptd/internal/secret"
)

// DestinationConfig is one receiver of the feed, pushed Standard Webhooks
// requests (README "The feed").
type DestinationConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Secret signs the requests: "whsec_" and base64 (Standard Webhooks),
	// as a literal, env:NAME or file:PATH.
	Secret string `yaml:"secret"`
	// Kinds and Sources select the events it receives (default: all).
	Kinds   []string `yaml:"kinds"`
	Sources []string `yaml:"sources"`
	// Timeout bounds each request (default 10s).
	Timeout Duration    `yaml:"timeout"`
	Retry   RetryConfig `yaml:"retry"`
}

// RetryConfig is a destination's retry policy.
type RetryConfig struct {
	// Schedule, if set, lists the waits after the first, second…
	// failure in a row (the last repeats); otherwise waits start at
	// Initial (default 1s) and double up to Max (default 5m).
	Schedule []Duration `yaml:"schedule"`
	Initial  Duration   `yaml:"initial"`
	Max      Duration   `yaml:"max"`
	// Jitter spreads each wait over ±Jitter of it (default 0.2; 0 none).
	Jitter *float64 `yaml:"jitter"`
	// PauseAfter pauses the destination after that many failures in a
	// row (default 100; 0 never), its event in the dead letters, until an
	// admin resumes it.
	PauseAfter *int `yaml:"pause_after"`
	// MaxAttempts gives up on an event after that many attempts (a dead
	// letter) and goes on; 0 (the default) never gives up.
	MaxAttempts int `yaml:"max_attempts"`
}

// defaultPauseAfter: with the default backoff (1s doubling to 5m), 100
// failures in a row are about eight hours of a destination down.
const defaultPauseAfter = 100

// validateDestinations checks the destinations: names, URLs, secrets
// that resolve to Standard Webhooks secrets, kinds and sources that
// exist, policies in range.
func (c *Config) validateDestinations() []error {
	var errs []error
	seen := map[string]bool{}
	sources := c.QuerySources()
	for i, d := range c.Destinations {
		where := fmt.Sprintf("destinations[%d] (%s)", i, d.Name)
		switch {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("destinations[%d]: no name", i))
		case seen[d.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate destination name", where))
		}
		seen[d.Name] = true
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: url is not an http(s) URL", where))
		}
		if d.Secret == "" {
			errs = append(errs, fmt.Errorf("%s: no secret (whsec_…, env:NAME or file:PATH)", where))
		} else if s, err := secret.Resolve(d.Secret); err != nil {
			errs = append(errs, fmt.Errorf("%s: secret: %w", where, err))
		} else if _, err := signer.StandardKey(trimSecret(s)); err != nil {
			errs = append(errs, fmt.Errorf("%s: secret: %w", where, err))
		}
		for _, k := range d.Kinds {
			if !feed.KnownKind(k) {
				errs = append(errs, fmt.Errorf("%s: unknown kind %q (kinds: %v)", where, k, feed.Kinds))
			}
		}
		for _, s := range d.Sources {
			if !slices.Contains(sources, s) {
				errs = append(errs, fmt.Errorf("%s: unknown source %q", where, s))
			}
		}
		r := d.Retry
		if r.Jitter != nil && (*r.Jitter < 0 || *r.Jitter > 1) {
			errs = append(errs, fmt.Errorf("%s: retry.jitter must be between 0 and 1", where))
		}
		if (r.PauseAfter != nil && *r.PauseAfter < 0) || r.MaxAttempts < 0 {
			errs = append(errs, fmt.Errorf("%s: retry.pause_after and retry.max_attempts must not be negative", where))
		}
		if r.Max != 0 && r.Initial > r.Max {
			errs = append(errs, fmt.Errorf("%s: retry.initial is above retry.max", where))
		}
	}
	return errs
}

// trimSecret drops the line end a secret file usually has.
func trimSecret(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// FeedDestinations converts the config's destinations, secrets resolved.
func (c *Config) FeedDestinations() ([]feed.Destination, error) {
	var out []feed.Destination
	for _, d := range c.Destinations {
		s, err := secret.Resolve(d.Secret)
		if err != nil {
			return nil, fmt.Errorf("destination %s: secret: %w", d.Name, err)
		}
		r := feed.Retry{Initial: time.Duration(d.Retry.Initial), Max: time.Duration(d.Retry.Max), Jitter: feed.DefaultJitter,
			PauseAfter: defaultPauseAfter, MaxAttempts: d.Retry.MaxAttempts}
		for _, w := range d.Retry.Schedule {
			r.Schedule = append(r.Schedule, time.Duration(w))
		}
		if d.Retry.Jitter != nil {
			r.Jitter = *d.Retry.Jitter
		}
		if d.Retry.PauseAfter != nil {
			r.PauseAfter = *d.Retry.PauseAfter
		}
		out = append(out, feed.Destination{Name: d.Name, URL: d.URL, Secret: trimSecret(s), Kinds: d.Kinds, Sources: d.Sources,
			Timeout: time.Duration(d.Timeout), Retry: r})
	}
	return out, nil
}
