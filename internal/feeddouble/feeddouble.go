// Package feeddouble is a test double of feed.Source: an in-memory feed
// that a test appends events to, as the read models would derive them.
package feeddouble

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/receiptd/receiptd/feed"
)

// Source is an in-memory feed.Source. The zero value is not usable: call
// New. It is safe for concurrent use.
type Source struct {
	mu      sync.Mutex
	events  []feed.Event // by position
	head    uint64
	changed chan struct{} // closed and replaced when head moves
	reads   int
	fail    error
}

var _ feed.Source = (*Source)(nil)

// New returns an empty feed.
func New() *Source { return &Source{changed: make(chan struct{})} }

// Append adds the feed events caused by the log event at commit position
// logCommit (numbered with feed.Number) and moves the head to it. Log
// positions must grow.
func (s *Source) Append(logCommit uint64, events ...feed.Event) []feed.Event {
	evs := append([]feed.Event(nil), events...)
	if err := feed.Number(logCommit, evs); err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := feed.HeadAt(logCommit); h <= s.head {
		panic(fmt.Sprintf("feeddouble: log position %d is not after the head %d", logCommit, feed.LogPosition(s.head)))
	}
	s.events = append(s.events, evs...)
	s.advance(feed.HeadAt(logCommit))
	return evs
}

// Advance moves the head to log position logCommit without events (log
// events that caused none).
func (s *Source) Advance(logCommit uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := feed.HeadAt(logCommit); h > s.head {
		s.advance(h)
	}
}

func (s *Source) advance(h uint64) {
	s.head = h
	close(s.changed)
	s.changed = make(chan struct{})
}

// FeedHead implements feed.Source.
func (s *Source) FeedHead() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// Reads counts the ReadFeed calls so far.
func (s *Source) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// FailReads makes every ReadFeed fail with err (nil: succeed again).
func (s *Source) FailReads(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// ReadFeed implements feed.Source.
func (s *Source) ReadFeed(ctx context.Context, after uint64, max int) ([]feed.Event, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.fail != nil {
		return nil, 0, s.fail
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Position > after })
	j := min(len(s.events), i+max)
	out := append([]feed.Event(nil), s.events[i:j]...)
	upTo := max64(after, s.head)
	if len(out) == max {
		upTo = out[len(out)-1].Position
	}
	return out, upTo, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// WaitFeed implements feed.Source.
func (s *Source) WaitFeed(ctx context.Context, after uint64) error {
	for {
		s.mu.Lock()
		head, ch := s.head, s.changed
		s.mu.Unlock()
		if head > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("feeddouble: wait after %d: %w", after, ctx.Err())
		}
	}
}
