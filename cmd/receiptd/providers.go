package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/secret"
)

// buildProviders makes one verifier per configured source. A source with no
// verifier refuses to start unless it is marked insecure.
func buildProviders(cfg Config, logger *slog.Logger) ([]webhook.Provider, error) {
	var out []webhook.Provider
	for _, s := range cfg.Sources {
		p, err := buildProvider(s)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		if s.Insecure {
			logger.Warn("source accepts deliveries WITHOUT verification (insecure: true); development only", "source", s.Name)
			p = insecureProvider{p}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		logger.Warn("no sources configured: every webhook is answered 404 (see --config)")
	}
	return out, nil
}

func buildProvider(s SourceConfig) (webhook.Provider, error) {
	switch s.Kind {
	case "reewild":
		secrets, err := secret.ResolveAll(s.Secrets)
		if err != nil {
			return nil, fmt.Errorf("secrets%w", err)
		}
		if len(secrets) == 0 {
			if !s.Insecure {
				return nil, errors.New("no secrets: a source must be verifiable (set secrets, or insecure: true for development)")
			}
			secrets = [][]byte{[]byte("insecure-source-has-no-secret")} // never used: Verify is bypassed
		}
		return reewild.New(reewild.Config{Source: s.Name, Secrets: secrets})
	default:
		return nil, fmt.Errorf("unknown kind %q", s.Kind)
	}
}

// insecureProvider accepts every delivery unverified, for development.
type insecureProvider struct{ webhook.Provider }

func (p insecureProvider) Verify(*http.Request, []byte, time.Time) (webhook.Verification, error) {
	return webhook.Verification{Scheme: "none-insecure"}, nil
}
