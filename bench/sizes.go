package main

import (
	"strings"

	"github.com/receiptd/receiptd/bench/benchdata"
)

type sizeSummary struct {
	mean          float64
	min, max      int
	share1to3KB   float64
	perEventType  map[string]float64
	sampledBodies int
}

// sizeStats measures the bodies of n deliveries spread over the universe.
func sizeStats(u benchdata.Universe, n int) sizeSummary {
	s := sizeSummary{min: 1 << 30, perEventType: map[string]float64{}}
	counts := map[string]int{}
	total, inRange := 0, 0
	var buf []byte
	for i := range n {
		k := int(benchdata.Mix(u.Seed, uint64(i)|1<<57) % uint64(u.Size()))
		buf = u.Delivery(buf[:0], k)
		l := len(buf)
		total += l
		s.min, s.max = min(s.min, l), max(s.max, l)
		if l >= 1000 && l <= 3000 {
			inRange++
		}
		typ := eventTypeOf(buf)
		s.perEventType[typ] += float64(l)
		counts[typ]++
		s.sampledBodies++
	}
	s.mean = float64(total) / float64(s.sampledBodies)
	s.share1to3KB = float64(inRange) / float64(s.sampledBodies)
	for t, c := range counts {
		s.perEventType[t] /= float64(c)
	}
	return s
}

func eventTypeOf(body []byte) string {
	const p = `{"eventType":"`
	rest := strings.TrimPrefix(string(body[:min(len(body), 64)]), p)
	t, _, _ := strings.Cut(rest, `"`)
	return t
}
