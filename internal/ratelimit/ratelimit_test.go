package ratelimit_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/internal/ratelimit"
)

func TestNewRejectsBadSettings(t *testing.T) {
	for _, c := range []struct {
		rate         float64
		burst, maxKe int
	}{{0, 1, 0}, {-1, 1, 0}, {1, 0, 0}, {1, 1, -1}} {
		if _, err := ratelimit.New(c.rate, c.burst, c.maxKe); err == nil {
			t.Errorf("New(%v, %d, %d) succeeded", c.rate, c.burst, c.maxKe)
		}
	}
}

func TestTakeBurstThenRefill(t *testing.T) {
	k, err := ratelimit.New(2, 3, 0) // 2/s, burst 3
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if ok, _ := k.Take("a", now); !ok {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	ok, wait := k.Take("a", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th take = %v, %v; want refused, 500ms", ok, wait)
	}
	// A refused take consumed nothing: the wait does not grow.
	if _, wait2 := k.Take("a", now); wait2 != wait {
		t.Errorf("a second refused take waits %v, want %v", wait2, wait)
	}
	// Other keys have their own bucket.
	if ok, _ := k.Take("b", now); !ok {
		t.Error("key b refused because of key a")
	}
	if ok, _ := k.Take("a", now.Add(500*time.Millisecond)); !ok {
		t.Error("no token after the refill time")
	}
}

func TestTableIsBounded(t *testing.T) {
	k, err := ratelimit.New(1, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		k.Take(fmt.Sprint("key-", i), now)
	}
	if n := k.Len(); n != 100 {
		t.Fatalf("tracks %d keys, want at most 100", n)
	}
	// The most recently used key survives: its bucket is still empty.
	if ok, _ := k.Take("key-9999", now); ok {
		t.Error("the most recent key was evicted")
	}
	// The least recently used was dropped and starts full.
	if ok, _ := k.Take("key-0", now); !ok {
		t.Error("an evicted key did not start over")
	}
	if n := k.Len(); n != 100 {
		t.Fatalf("tracks %d keys after eviction, want 100", n)
	}
}

func TestConcurrentTakesNeverExceedBurst(t *testing.T) {
	k, err := ratelimit.New(0.001, 50, 8)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if ok, _ := k.Take("shared", now); ok {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if granted != 50 {
		t.Fatalf("granted %d tokens, want exactly the burst of 50", granted)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {100 * time.Second, 100}, {0, 1}} {
		if got := ratelimit.RetryAfterSeconds(c.d); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}
