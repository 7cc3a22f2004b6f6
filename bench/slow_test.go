package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestSlowDestinationAndSubscriber: the slow destination answers 204
// after its delay and its config section is a destination receiptd
// accepts in form; a slow subscriber reads one event per delay and
// resumes with Last-Event-ID.
func TestSlowDestinationAndSubscriber(t *testing.T) {
	d, err := startSlowDestination(50 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	start := time.Now()
	resp, err := http.Post(d.url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || time.Since(start) < 50*time.Millisecond || d.requests.Load() != 1 {
		t.Errorf("answer %d after %v, %d requests", resp.StatusCode, time.Since(start), d.requests.Load())
	}
	var cfg struct {
		Destinations []struct {
			Name, URL, Secret, Timeout string
		} `yaml:"destinations"`
	}
	if err := yaml.Unmarshal([]byte(d.config()), &cfg); err != nil || len(cfg.Destinations) != 1 ||
		cfg.Destinations[0].URL != d.url || !strings.HasPrefix(cfg.Destinations[0].Secret, "whsec_") || cfg.Destinations[0].Timeout != "10s" {
		t.Errorf("config %q: %+v, %v", d.config(), cfg, err)
	}

	// A feed that sends three events, then drops the connection.
	var mu sync.Mutex
	var lastIDs []string
	var conns atomic.Int64
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := conns.Add(1)
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		for i := range 3 {
			fmt.Fprintf(w, "id: %d\nevent: balance.changed.v1\ndata: {}\n\n", 10*n+int64(i))
		}
	}))
	defer feed.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var events atomic.Int64
	done := make(chan struct{})
	start = time.Now()
	go func() { slowSubscriber(ctx, feed.URL, 20*time.Millisecond, &events); close(done) }()
	for events.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if el := time.Since(start); el < 4*20*time.Millisecond { // a sleep after each event counted
		t.Errorf("5 events in %v: not one per 20ms", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[1] != "12" {
		t.Errorf("Last-Event-ID of each connection: %q", lastIDs)
	}
}
