package config

import (
	"fmt"

	"github.com/receiptd/receiptd/handlers/console"
	"github.com/receiptd/receiptd/internal/secret"
)

// ConsoleSources are the sources as the console's "Send test event" signs
// for them: each with its first secret or token resolved (none for reap,
// whose private key receiptd never holds).
func (c *Config) ConsoleSources() ([]console.Source, error) {
	var sources []console.Source
	for _, s := range c.Sources {
		cs := console.Source{Name: s.Name, Kind: s.Kind, Algorithm: s.Algorithm, Encoding: s.Encoding}
		refs := s.Secrets
		if s.Kind == "reward" || s.Kind == "retm" {
			refs = s.Tokens
		}
		if s.Kind != "reap" && len(refs) > 0 {
			key, err := secret.Resolve(refs[0])
			if err != nil {
				return nil, fmt.Errorf("console: source %s: %w", s.Name, err)
			}
			cs.Key = key
		}
		sources = append(sources, cs)
	}
	return sources, nil
}
