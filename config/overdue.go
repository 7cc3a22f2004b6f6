package config

import (
	"time"

	"github.com/receiptd/receiptd/handlers/api"
)

// Overdue is the clock now and each source's retry window (the source's
// overdue_after, else api.DefaultOverdueAfter), which the overdue sweep
// and the API share.
func (c *Config) Overdue(now func() time.Time) api.Overdue {
	windows := make(map[string]time.Duration, len(c.Sources))
	for _, s := range c.Sources {
		w := api.DefaultOverdueAfter
		if s.OverdueAfter != nil {
			w = time.Duration(*s.OverdueAfter)
		}
		windows[s.Name] = w
	}
	return api.Overdue{
		Now: now,
		After: func(source string) time.Duration {
			if w, ok := windows[source]; ok {
				return w
			}
			return api.DefaultOverdueAfter
		},
	}
}
