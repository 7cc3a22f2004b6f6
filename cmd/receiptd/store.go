package main

import (
	"fmt"
	"path/filepath"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// openStore chooses the log with a switch on the config.
func openStore(cfg Config) (eventstore.Store, error) {
	switch cfg.Store.Kind {
	case "embedded":
		s, err := bolt.Open(filepath.Join(cfg.DataDir, "events.db"), bolt.Options{})
		if err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store kind %q is not supported by this build", cfg.Store.Kind)
	}
}
