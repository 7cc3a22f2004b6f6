package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// stats summarises one measured window of a load.
type stats struct {
	window    time.Duration
	ok        int         // answered 200
	errs      int         // any other answer, or no answer
	codes     map[int]int // status → count, 0 for a transport error
	lat       []time.Duration
	firstErr  string
	sent      int // requests started in the run, measured or not
	sentDups  int
	bodyBytes int64
}

func (s *stats) rate() float64 {
	if s.window <= 0 {
		return 0
	}
	return float64(s.ok) / s.window.Seconds()
}

func (s *stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p/100+0.5) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

func (s *stats) errorSummary() string {
	if s.errs == 0 {
		return "0"
	}
	var parts []string
	for code, n := range s.codes {
		if code == http.StatusOK {
			continue
		}
		name := fmt.Sprint(code)
		switch {
		case code == 0:
			name = "transport"
		case code >= grpcCodeBase:
			name = codes.Code(code - grpcCodeBase).String()
		}
		parts = append(parts, fmt.Sprintf("%d×%s", n, name))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s; first: %s)", s.errs, strings.Join(parts, ", "), s.firstErr)
}

// grpcCodeBase offsets gRPC status codes in stats.codes, apart from HTTP's.
const grpcCodeBase = 1000

// worker-local record of one run.
type record struct {
	lat      []time.Duration
	ok, errs int
	codes    map[int]int
	firstErr string
	bytes    int64
}

// newClient returns an HTTP/1.1 client holding one keep-alive connection.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// ingestLoad drives POST url with the deliveries of seq, signed with sign,
// from conns connections, each sending its next delivery as soon as the
// previous one is answered (closed loop). It measures the requests that
// complete in [warmup, warmup+measure). It stops at the end of that
// window, when count requests have been sent (count > 0), when the
// sequence is exhausted, or when ctx ends. If pace is not nil, each request
// first takes a token from it (open loop at the pacer's rate).
//
// onOK, if not nil, is called with the index of every delivery answered 200.
type ingestLoad struct {
	url     string
	seq     *sequence
	sign    *signer
	conns   int
	warmup  time.Duration
	measure time.Duration // 0: until count or the sequence ends; every request is measured
	count   int
	pace    <-chan struct{}
	onOK    func(k int)
}

func (l ingestLoad) run(ctx context.Context) *stats {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent atomic.Int64
	var exhausted atomic.Bool
	start := time.Now()
	t0, t1 := start.Add(l.warmup), time.Time{}
	if l.measure > 0 {
		t1 = t0.Add(l.measure)
		time.AfterFunc(time.Until(t1), cancel)
	}
	records := make([]*record, l.conns)
	var wg sync.WaitGroup
	for w := range l.conns {
		rec := &record{codes: map[int]int{}}
		records[w] = rec
		wg.Go(func() {
			client := newClient()
			defer client.CloseIdleConnections()
			buf := make([]byte, 0, 4096)
			for ctx.Err() == nil {
				if l.pace != nil {
					select {
					case <-l.pace:
					case <-ctx.Done():
						return
					}
				}
				if l.count > 0 && sent.Add(1) > int64(l.count) {
					return
				}
				k, _, ok := l.seq.take()
				if !ok {
					exhausted.Store(true)
					return
				}
				buf = l.seq.u.Delivery(buf[:0], k)
				req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, l.url, bytes.NewReader(buf))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Reewild-Signature", l.sign.sign(buf))
				began := time.Now()
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				done := time.Now()
				if code == http.StatusOK && l.onOK != nil {
					l.onOK(k)
				}
				if done.Before(t0) || (!t1.IsZero() && !done.Before(t1)) {
					continue
				}
				rec.bytes += int64(len(buf))
				rec.codes[code]++
				if code == http.StatusOK {
					rec.ok++
					rec.lat = append(rec.lat, done.Sub(began))
					continue
				}
				rec.errs++
				if rec.firstErr == "" {
					if err != nil {
						rec.firstErr = err.Error()
					} else {
						rec.firstErr = fmt.Sprintf("status %d", code)
					}
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	s := &stats{codes: map[int]int{}}
	if t1.IsZero() || end.Before(t1) {
		t1 = end
	}
	s.window = t1.Sub(t0)
	if l.measure > 0 && exhausted.Load() {
		logf("warning: every delivery of the universe was sent %v into a %v window (+%v warm-up): raise -receipts", end.Sub(t0).Round(time.Millisecond), l.measure, l.warmup)
	}
	for _, r := range records {
		s.ok += r.ok
		s.errs += r.errs
		s.bodyBytes += r.bytes
		s.lat = append(s.lat, r.lat...)
		for c, n := range r.codes {
			s.codes[c] += n
		}
		if s.firstErr == "" {
			s.firstErr = r.firstErr
		}
	}
	slices.Sort(s.lat)
	return s
}

// pacer emits rate tokens per second on the returned channel until ctx
// ends. Tokens not taken are dropped after a short backlog, so a server
// that falls behind is not then flooded.
func pacer(ctx context.Context, rate float64) <-chan struct{} {
	ch := make(chan struct{}, 256)
	go func() {
		start := time.Now()
		emitted := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				due := int(now.Sub(start).Seconds() * rate)
				for ; emitted < due; emitted++ {
					select {
					case ch <- struct{}{}:
					default: // backlog full: the load is behind its rate
					}
				}
			}
		}
	}()
	return ch
}
