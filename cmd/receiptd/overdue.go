package main

import (
	"time"

	"github.com/receiptd/receiptd/handlers/api"
)

// overdueSweepEvery is how often the overdue sweep counts the stuck
// receipts for receiptd_receipts_overdue.
const overdueSweepEvery = time.Minute

// clock is the time the overdue sweep and the API's reads are given (a
// variable so that a test can move it).
var clock = time.Now

// overdueConfig is the clock and each source's retry window (the
// source's overdue_after, else api.DefaultOverdueAfter).
func overdueConfig(cfg Config) api.Overdue {
	windows := make(map[string]time.Duration, len(cfg.Sources))
	for _, s := range cfg.Sources {
		w := api.DefaultOverdueAfter
		if s.OverdueAfter != nil {
			w = time.Duration(*s.OverdueAfter)
		}
		windows[s.Name] = w
	}
	return api.Overdue{
		Now: func() time.Time { return clock() },
		After: func(source string) time.Duration {
			if w, ok := windows[source]; ok {
				return w
			}
			return api.DefaultOverdueAfter
		},
	}
}
