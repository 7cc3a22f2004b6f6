package console

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// deliveriesMetric is the ingest counter the chart samples.
const deliveriesMetric = "receiptd_webhook_deliveries_total"

// chartOutcomes are drawn in this order; every other outcome is "other".
var chartOutcomes = []string{"accepted", "duplicate", "quarantined", "bad_signature", "malformed", "store_unavailable", "other"}

type counts map[string]map[string]float64 // source → outcome → deliveries

type sample struct {
	at     time.Time
	counts counts
}

// sampler keeps the latest samples of the ingest counters, a bounded ring
// in memory: the log holds accepted deliveries only, never refused ones.
type sampler struct {
	g    prometheus.Gatherer
	size int
	mu   sync.Mutex
	ring []sample
}

func newSampler(g prometheus.Gatherer, size int) *sampler {
	return &sampler{g: g, size: size + 1} // size intervals need size+1 samples
}

// read gathers the counters now.
func (s *sampler) read() (counts, error) {
	fams, err := s.g.Gather()
	if err != nil {
		return nil, err
	}
	out := counts{}
	for _, f := range fams {
		if f.GetName() != deliveriesMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			var source, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					source = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			if source == "" {
				source = "(unknown source)"
			}
			if !slices.Contains(chartOutcomes, outcome) {
				outcome = "other"
			}
			if out[source] == nil {
				out[source] = map[string]float64{}
			}
			out[source][outcome] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

func (s *sampler) sample(now time.Time) {
	c, err := s.read()
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == s.size {
		s.ring = s.ring[1:]
	}
	s.ring = append(s.ring, sample{at: now, counts: c})
}

func (s *sampler) samples() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ring)
}

// chart is one source's stacked bars: deliveries per interval by outcome.
type chart struct {
	Source string
	Width  int
	Height int
	Max    float64
	Bars   []bar
	Labels []label
	Totals []total // since the server started
}

type bar struct {
	X, Y, W, H float64
	Outcome    string
	Title      string
}

type label struct {
	X    float64
	Text string
}

type total struct {
	Outcome string
	Count   int64
}

const (
	chartW, chartH = 760, 170
	chartLeft      = 44
	chartBottom    = 20
)

// charts draws one chart per source from the samples and a reading now
// (the last, partial interval).
func charts(ss []sample, now sample, every time.Duration) []chart {
	all := append(ss, now)
	layout := "15:04"
	if every < time.Minute {
		layout = "15:04:05"
	}
	var sources []string
	for src, byOutcome := range now.counts {
		var sum float64
		for _, v := range byOutcome {
			sum += v
		}
		if sum > 0 { // counters only grow: zero now means none ever
			sources = append(sources, src)
		}
	}
	slices.Sort(sources)
	var out []chart
	for _, src := range sources {
		ch := chart{Source: src, Width: chartW, Height: chartH}
		n := len(all) - 1
		deltas := make([]map[string]float64, n)
		for i := range n {
			deltas[i] = map[string]float64{}
			var sum float64
			for _, o := range chartOutcomes {
				d := all[i+1].counts[src][o] - all[i].counts[src][o]
				if d < 0 { // a restart resets counters; the ring is per process, so this does not happen
					d = 0
				}
				deltas[i][o] = d
				sum += d
			}
			ch.Max = math.Max(ch.Max, sum)
		}
		scale := 1.0
		if ch.Max > 0 {
			scale = float64(chartH-chartBottom-6) / ch.Max
		}
		slots := max(n, 10)
		bw := float64(chartW-chartLeft) / float64(slots)
		for i := range n {
			x := chartLeft + float64(i)*bw
			y := float64(chartH - chartBottom)
			for _, o := range chartOutcomes {
				d := deltas[i][o]
				if d == 0 {
					continue
				}
				h := d * scale
				y -= h
				ch.Bars = append(ch.Bars, bar{X: x + 1, Y: y, W: math.Max(bw-2, 1), H: h, Outcome: o,
					Title: fmt.Sprintf("%s: %d %s, %s – %s", src, int64(d), o, all[i].at.UTC().Format("15:04:05"), all[i+1].at.UTC().Format("15:04:05"))})
			}
			if i == 0 || i == n-1 || (n > 8 && i%(n/4) == 0) {
				ch.Labels = append(ch.Labels, label{X: x + bw/2, Text: all[i+1].at.UTC().Format(layout)})
			}
		}
		for _, o := range chartOutcomes {
			if v := now.counts[src][o]; v > 0 {
				ch.Totals = append(ch.Totals, total{Outcome: o, Count: int64(v)})
			}
		}
		out = append(out, ch)
	}
	return out
}

// quarantined is one entry of a quarantine stream, for the page.
type quarantined struct {
	Source     string
	Position   uint64
	ReceivedAt string
	EventType  string
	Reason     string
	BodySHA256 string
	Raw        rawView
	raw        string // until Raw is made, in the order the page shows them
	forgotten  bool
}

// reprocessResult is what re-processing did to one quarantined delivery.
type reprocessResult struct {
	Source      string
	Position    uint64
	Outcome     string
	Stream      string
	NewPosition uint64
	Reason      string
	Href        string
}

type deliveriesData struct {
	Every       string
	Kept        string
	Charts      []chart
	ChartErr    string
	Quarantine  []quarantined
	QuarSources []string // sources with quarantined deliveries
	Truncated   []string
	QuarErr     string
	Reprocessed []reprocessResult
	Outcomes    []string
}

func (c *Console) deliveriesPage(w http.ResponseWriter, r *http.Request) {
	d := deliveriesData{
		Every:       c.o.SampleEvery.String(),
		Kept:        (c.o.SampleEvery * time.Duration(c.o.SampleCount)).String(),
		Reprocessed: c.sessions.takeFlash(sessionFrom(r.Context())),
		Outcomes:    chartOutcomes,
	}
	now, err := c.samples.read()
	if err != nil {
		d.ChartErr = err.Error()
	} else {
		d.Charts = charts(c.samples.samples(), sample{at: time.Now(), counts: now}, c.o.SampleEvery)
	}
	ctx := apiContext(r)
	for _, src := range c.o.Sources {
		page, err := c.audit.ListQuarantined(ctx, &receiptdv1.ListQuarantinedRequest{Source: src.Name, PageSize: api.MaxQuarantinePageSize})
		if err != nil {
			d.QuarErr = status.Convert(err).Message()
			break
		}
		if page.GetNextPageToken() != "" {
			d.Truncated = append(d.Truncated, src.Name)
		}
		if len(page.GetDeliveries()) > 0 {
			d.QuarSources = append(d.QuarSources, src.Name)
		}
		for _, q := range page.GetDeliveries() {
			d.Quarantine = append(d.Quarantine, quarantined{
				Source: q.GetSource(), Position: q.GetPosition(), ReceivedAt: fmtTime(q.GetReceivedAt()), EventType: clip(q.GetProviderEventType()),
				Reason: clip(q.GetReason()), BodySHA256: q.GetBodySha256(), raw: q.GetRawBody(), forgotten: q.GetForgotten(),
			})
		}
	}
	slices.SortFunc(d.Quarantine, func(a, b quarantined) int { return cmp.Compare(b.Position, a.Position) })
	budget := newRawBudget() // the newest first
	for i := range d.Quarantine {
		q := &d.Quarantine[i]
		if q.forgotten {
			q.Raw = rawView{Forgotten: true}
			continue
		}
		q.Raw, q.raw = viewOf(budget, q.raw, quarantineRawHref(q.Source, q.Position)), ""
	}
	c.render(w, r, http.StatusOK, "deliveries", d)
}

// reprocess runs one quarantined delivery (source and position), or every
// one of a source (no position), through the current decoders, with the
// query API's ReprocessQuarantined.
func (c *Console) reprocess(w http.ResponseWriter, r *http.Request) {
	source := r.PostFormValue("source")
	if !slices.ContainsFunc(c.o.Sources, func(s Source) bool { return s.Name == source }) {
		http.Error(w, "unknown source", http.StatusBadRequest)
		return
	}
	var position uint64
	if p := r.PostFormValue("position"); p != "" {
		var err error
		if position, err = strconv.ParseUint(p, 10, 64); err != nil {
			http.Error(w, "bad position", http.StatusBadRequest)
			return
		}
	}
	resp, err := c.audit.ReprocessQuarantined(apiContext(r), &receiptdv1.ReprocessQuarantinedRequest{Source: source, Position: position})
	if err != nil {
		c.apiError(w, r, "re-process", err)
		return
	}
	var results []reprocessResult
	for _, res := range resp.GetResults() {
		rr := reprocessResult{Source: source, Position: res.GetQuarantinedPosition(), Outcome: res.GetOutcome(), Stream: res.GetStream(),
			NewPosition: res.GetPosition(), Reason: clip(res.GetReason())}
		if cat, src, id, err := aggregate.ParseStreamID(res.GetStream()); err == nil && cat == aggregate.CategoryReceipt {
			rr.Href = receiptHref(src, id)
		}
		results = append(results, rr)
	}
	c.o.Logger.InfoContext(r.Context(), "console: re-processed quarantined deliveries", "principal", sessionFrom(r.Context()).principal,
		"source", source, "position", position, "results", len(results))
	c.sessions.setFlash(sessionFrom(r.Context()), results)
	http.Redirect(w, r, Prefix+"deliveries#reprocessed", http.StatusSeeOther)
}
