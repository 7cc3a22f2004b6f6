package config

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/receiptd/receiptd/internal/secret"
	"github.com/receiptd/receiptd/privacy"
)

// PrivacyConfig turns on sealing of personal data (package privacy, the
// README's "Personal data"). Without it, personal data is stored in the
// clear, as before.
type PrivacyConfig struct {
	// Key is the key-encryption key that wraps every data key: a secret
	// reference (env:NAME, file:PATH or a literal) to 32 bytes, 64 hex
	// digits or the base64 of 32 bytes (`openssl rand -hex 32`). Keys
	// lists several instead, for rotation: the first wraps new data keys,
	// every one unwraps; `receiptd privacy rewrap` moves every data key to
	// the first, after which the others may go. Give Key or Keys.
	Key  string   `yaml:"key"`
	Keys []string `yaml:"keys"`
	// KeyFile is the embedded store's key file (default
	// {data-dir}/keys.db). It is never part of a log backup; put it on
	// another volume than the data dir to keep it out of the data dir's
	// own backups too. With kurrentdb the keys are streams of the cluster
	// (privacy.StreamStore) and KeyFile is not used.
	KeyFile string `yaml:"key_file"`
	// CacheBytes bounds the data keys kept unwrapped in memory (about
	// 1 KiB a subject). Default: its share of memory_budget (1/32: 8 MiB
	// of 256 MiB).
	CacheBytes int64 `yaml:"cache_bytes"`
}

func (p *PrivacyConfig) refs() []string {
	if p.Key != "" {
		return append([]string{p.Key}, p.Keys...)
	}
	return p.Keys
}

func (p *PrivacyConfig) validate() []error {
	var errs []error
	switch {
	case p.Key == "" && len(p.Keys) == 0:
		errs = append(errs, errors.New("privacy: needs a key (or keys, for rotation): the key-encryption key"))
	case p.Key != "" && len(p.Keys) > 0:
		errs = append(errs, errors.New("privacy: give key or keys, not both"))
	}
	if p.CacheBytes < 0 {
		errs = append(errs, errors.New("privacy: cache_bytes must be positive"))
	}
	return errs
}

// KeyFile is where the embedded store's data keys live.
func (c *Config) KeyFile() string {
	if c.Privacy != nil && c.Privacy.KeyFile != "" {
		return c.Privacy.KeyFile
	}
	return filepath.Join(c.DataDir, "keys.db")
}

// KEKs resolves and parses the configured key-encryption keys.
func (p *PrivacyConfig) KEKs() ([]*privacy.KEK, error) {
	var keks []*privacy.KEK
	for i, ref := range p.refs() {
		v, err := secret.Resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("privacy: keys[%d]: %w", i, err)
		}
		k, err := privacy.ParseKEK(v)
		clear(v)
		if err != nil {
			return nil, fmt.Errorf("privacy: keys[%d]: %w", i, err)
		}
		keks = append(keks, k)
	}
	return keks, nil
}

// UserNamespaces maps each source whose user ids are another source's
// (user_namespace) to that source: a privacy request naming it is about
// the other's subject, as its deliveries are sealed.
func (c *Config) UserNamespaces() map[string]string {
	m := map[string]string{}
	for _, s := range c.Sources {
		if s.UserNamespace != "" && s.UserNamespace != s.Name {
			m[s.Name] = s.UserNamespace
		}
	}
	return m
}
