package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/feed"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/internal/feeddouble"
	"github.com/receiptd/receiptd/projections"
)

// feedPlan is a feed for the log events from..to-1: each causes no feed
// event, or a balance, or a balance and an entity. It returns what each
// log event causes (before numbering) and every feed event, numbered.
func feedPlan(from, to uint64) (caused map[uint64][]feed.Event, all []feed.Event) {
	at := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	caused = map[uint64][]feed.Event{}
	for p := from; p < to; p++ {
		user := []string{"alice", "bob", "carol"}[p%3]
		bal, _ := json.Marshal(projections.Balance{Source: "reewild", UserID: user})
		ent, _ := json.Marshal(projections.Entity{Source: "reap", Kind: "account", ID: "acc" + user, UserID: user, FirstSeen: at, LastSeen: at})
		switch p % 4 {
		case 1, 2:
			caused[p] = []feed.Event{feed.BalanceChanged("reewild", user, p, bal, &at, at)}
		case 3:
			caused[p] = []feed.Event{feed.BalanceChanged("reewild", user, p, bal, &at, at), feed.EntityChanged("reap", "account", "acc"+user, user, p, ent, nil, at)}
		}
		evs := slices.Clone(caused[p])
		if err := feed.Number(p, evs); err != nil {
			panic(err)
		}
		all = append(all, evs...)
	}
	return caused, all
}

// growFeed appends the log events from..to-1 of feedPlan to src, one
// every few milliseconds, as the read models would while ingest runs,
// and returns every feed event it appends.
func growFeed(t *testing.T, src *feeddouble.Source, from, to uint64, every time.Duration) []feed.Event {
	caused, all := feedPlan(from, to)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := from; p < to && ctx.Err() == nil; p++ {
			if evs := caused[p]; len(evs) > 0 {
				src.Append(p, evs...)
			} else {
				src.Advance(p)
			}
			time.Sleep(every)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return all
}

// resumingConsumer is a consumer that is killed after a few messages,
// again and again, and each time resumes after the last position it saw
// (an event's or a checkpoint's): it records every event it was sent and
// fails on any position not after the last one.
type resumingConsumer struct {
	t        *testing.T
	rng      *rand.Rand
	last     uint64   // the position to resume after
	events   []uint64 // every event's position, in arrival order
	ids      map[uint64]string
	sessions int
}

// done reports whether the consumer has n events.
func (c *resumingConsumer) done(n int) bool { return len(c.events) >= n }

// saw records one message; it fails the test on a repeat or a regression.
func (c *resumingConsumer) saw(pos uint64, kind, id string) {
	c.t.Helper()
	if pos <= c.last {
		c.t.Fatalf("session %d: %s at %d after position %d: a repeat or out of order", c.sessions, kind, pos, c.last)
	}
	c.last = pos
	if kind != feed.KindCheckpoint {
		c.events = append(c.events, pos)
		c.ids[pos] = id
	}
}

// check compares what the consumer saw with the feed it should have seen.
func (c *resumingConsumer) check(want []feed.Event, filter func(feed.Event) bool) {
	c.t.Helper()
	var w []uint64
	for _, e := range want {
		if filter(e) {
			w = append(w, e.Position)
			if c.ids[e.Position] != e.ID {
				c.t.Errorf("event at %d: id %q, want %q", e.Position, c.ids[e.Position], e.ID)
			}
		}
	}
	if !slices.Equal(c.events, w) {
		c.t.Fatalf("over %d sessions the consumer saw %d events %v, want %d %v", c.sessions, len(c.events), c.events, len(w), w)
	}
	if c.sessions < 5 {
		c.t.Fatalf("only %d sessions: the consumer was hardly killed", c.sessions)
	}
}

// TestFeedKilledAndResumed: a gRPC consumer (Subscribe with
// after_position) and an SSE consumer (an EventSource reconnecting with
// Last-Event-ID), each killed after a random few messages again and again
// while the feed grows, see every feed event exactly once, in position
// order, unfiltered and filtered (resuming from checkpoints too).
func TestFeedKilledAndResumed(t *testing.T) {
	for _, f := range []struct {
		name  string
		kinds []string
		match func(feed.Event) bool
	}{
		{"all", nil, func(feed.Event) bool { return true }},
		{"entities", []string{feed.KindEntityChanged}, func(e feed.Event) bool { return e.Kind == feed.KindEntityChanged }},
	} {
		t.Run("gRPC/"+f.name, func(t *testing.T) {
			env := newFeedEnv(t)
			all := growFeed(t, env.src, 1, 120, time.Millisecond)
			n := countMatching(all, f.match)
			c := &resumingConsumer{t: t, rng: rand.New(rand.NewPCG(15, 1)), ids: map[uint64]string{}}
			for !c.done(n) {
				c.sessions++
				ctx, kill := context.WithTimeout(bearerCtx(context.Background(), feedKey), 10*time.Second)
				s, err := env.client.Subscribe(ctx, &receiptdv1.SubscribeRequest{AfterPosition: c.last, Kinds: f.kinds})
				if err != nil {
					t.Fatal(err)
				}
				for k := 1 + c.rng.IntN(6); k > 0 && !c.done(n); k-- {
					m, err := s.Recv()
					if err != nil {
						t.Fatalf("session %d: %v", c.sessions, err)
					}
					c.saw(m.GetPosition(), m.GetKind(), m.GetId())
				}
				kill() // the consumer dies mid-stream
			}
			c.check(all, f.match)
		})
		t.Run("SSE/"+f.name, func(t *testing.T) {
			env := newFeedEnv(t)
			all := growFeed(t, env.src, 1, 120, time.Millisecond)
			n := countMatching(all, f.match)
			c := &resumingConsumer{t: t, rng: rand.New(rand.NewPCG(15, 2)), ids: map[uint64]string{}}
			query := ""
			if f.kinds != nil {
				query = "?kinds=" + strings.Join(f.kinds, ",")
			}
			for !c.done(n) {
				c.sessions++
				ctx, kill := context.WithCancel(context.Background())
				var header []string
				if c.sessions > 1 { // what an EventSource sends when it reconnects
					header = []string{"Last-Event-ID", strconv.FormatUint(c.last, 10)}
				}
				resp, r := env.openSSE(t, ctx, query, header...)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("session %d: status %d", c.sessions, resp.StatusCode)
				}
				for k := 1 + c.rng.IntN(6); k > 0 && !c.done(n); k-- {
					ev := readOneSSE(t, r)
					pos, err := strconv.ParseUint(ev.id, 10, 64)
					if err != nil {
						t.Fatalf("session %d: event %+v: id is not a position", c.sessions, ev)
					}
					var m struct {
						ID       string `json:"id"`
						Position string `json:"position"`
					}
					if err := json.Unmarshal([]byte(ev.data), &m); err != nil || m.Position != ev.id {
						t.Fatalf("session %d: data %s (%v), id %s", c.sessions, ev.data, err, ev.id)
					}
					c.saw(pos, ev.event, m.ID)
				}
				kill() // the connection drops mid-stream
				resp.Body.Close()
			}
			c.check(all, f.match)
		})
	}
}

func countMatching(evs []feed.Event, match func(feed.Event) bool) int {
	n := 0
	for _, e := range evs {
		if match(e) {
			n++
		}
	}
	return n
}

// readOneSSE reads the next Server-Sent Event, failing after 10 s.
func readOneSSE(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	type res struct {
		ev  sseEvent
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var cur sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				ch <- res{err: err}
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				ch <- res{ev: cur}
				return
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	select {
	case x := <-ch:
		if x.err != nil && !errors.Is(x.err, io.EOF) {
			t.Fatalf("reading SSE: %v", x.err)
		}
		if x.err != nil {
			t.Fatal("the SSE stream ended")
		}
		return x.ev
	case <-time.After(10 * time.Second):
		t.Fatal("no SSE event within 10s")
	}
	return sseEvent{}
}

// TestFeedSSEOutlivesServerTimeouts: GET /v1/feed lasts longer than the
// HTTP server's read and write timeouts (an idle feed sends nothing for
// as long as nothing happens), like a watch.
func TestFeedSSEOutlivesServerTimeouts(t *testing.T) {
	env := newFeedEnv(t)
	const timeout = 150 * time.Millisecond
	srv := httptest.NewUnstartedServer(env.rest.Config.Handler)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	env.rest.Close()
	env.rest = srv
	all := env.fill(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, r := env.openSSE(t, ctx, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for range all {
		readOneSSE(t, r)
	}
	<-time.After(3 * timeout) // both server timeouts pass while the feed is idle
	more := env.fill(t, 100)
	ev := readOneSSE(t, r)
	for ev.event == feed.KindCheckpoint {
		ev = readOneSSE(t, r)
	}
	if ev.id != strconv.FormatUint(more[0].Position, 10) {
		t.Fatalf("after the server's timeouts: %+v, want the event at %d", ev, more[0].Position)
	}
}
