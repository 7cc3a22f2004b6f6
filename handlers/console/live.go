package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// feedItem is a receipt the log touched: its source and id, and the commit
// position of its latest event.
type feedItem struct {
	source, id string
	position   uint64
}

// feed remembers the receipts whose streams got events since the server
// started, the most recent last, at most size of them, and wakes the Live
// pages' event streams when one is touched.
type feed struct {
	size    int
	mu      sync.Mutex
	items   []feedItem
	changed chan struct{} // closed and replaced at every change
}

func newFeed(size int) *feed {
	return &feed{size: size, changed: make(chan struct{})}
}

// follow subscribes to the log from its head until ctx ends.
func (f *feed) follow(ctx context.Context, log Log, logger *slog.Logger) error {
	head, err := log.Head(ctx)
	if err != nil {
		return fmt.Errorf("console: live feed: head: %w", err)
	}
	for {
		err := log.Subscribe(ctx, head, func(_ context.Context, evs []eventstore.RecordedEvent) error {
			for _, e := range evs {
				f.touch(e.Stream, e.Position.Commit)
				head = e.Position
			}
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("console: live feed: subscription ended; resubscribing", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (f *feed) touch(stream string, position uint64) {
	category, source, id, err := aggregate.ParseStreamID(stream)
	if err != nil || category != aggregate.CategoryReceipt {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, it := range f.items {
		if it.source == source && it.id == id {
			f.items = append(f.items[:i], f.items[i+1:]...)
			break
		}
	}
	if len(f.items) == f.size {
		f.items = f.items[1:]
	}
	f.items = append(f.items, feedItem{source: source, id: id, position: position})
	close(f.changed)
	f.changed = make(chan struct{})
}

// snapshot returns the items, oldest first, and a channel closed at the
// next change.
func (f *feed) snapshot() ([]feedItem, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]feedItem(nil), f.items...), f.changed
}

func (c *Console) livePage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "live", nil)
}

// liveRow is what the Live page's script draws for one receipt.
type liveRow struct {
	ReceiptID string     `json:"receiptId"`
	Source    string     `json:"source"`
	UserID    string     `json:"userId"`
	Status    string     `json:"status"`
	Points    string     `json:"points"`
	Stages    []liveStep `json:"stages"`
	Failure   string     `json:"failure,omitempty"`
	Anomalies []string   `json:"anomalies"`
	Position  uint64     `json:"position"`
	Href      string     `json:"href"`
	UserHref  string     `json:"userHref"`
}

type liveStep struct {
	Name     string `json:"name"`
	Reported bool   `json:"reported"`
}

// streamWriteTimeout bounds each write of the event stream (the server's
// WriteTimeout would otherwise end it).
const streamWriteTimeout = 30 * time.Second

// liveEvents is the Live page's server-sent event stream: every receipt of
// the feed once, then each again whenever its stream gets an event, read
// through the query API (GetReceipt at that position) as the operator.
func (c *Console) liveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The stream outlasts the server's read and write timeouts: lift them,
	// and bound each write instead.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(event string, v any) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write("hello", map[string]string{"at": time.Now().UTC().Format(time.RFC3339)}); err != nil {
		return
	}
	ctx := apiContext(r)
	sent := map[feedItem]bool{}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		items, changed := c.feed.snapshot()
		var retry <-chan time.Time // set when a read failed: try again soon
		for _, it := range items {
			if sent[it] {
				continue
			}
			rcpt, err := c.api.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: it.id, Source: it.source, MinPosition: it.position})
			switch status.Code(err) {
			case codes.OK:
			case codes.Unauthenticated, codes.PermissionDenied:
				_ = write("denied", map[string]string{"error": status.Convert(err).Message()})
				return
			default:
				if errors.Is(ctx.Err(), context.Canceled) {
					return
				}
				c.o.Logger.WarnContext(r.Context(), "console: live: read a receipt", "receipt", it.id, "err", err)
				retry = time.After(time.Second) // a rate limit, the read models behind: not sent yet
				continue
			}
			sent[it] = true
			if err := write("receipt", toLiveRow(rcpt, it.position)); err != nil {
				return
			}
		}
		kept := make(map[feedItem]bool, len(items))
		for _, it := range items {
			if sent[it] {
				kept[it] = true
			}
		}
		sent = kept
		select {
		case <-r.Context().Done():
			return
		case <-c.o.Lifetime.Done():
			return
		case <-changed:
		case <-retry:
		case <-keepalive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func toLiveRow(r *receiptdv1.Receipt, position uint64) liveRow {
	row := liveRow{
		ReceiptID: r.GetReceiptId(), Source: r.GetSource(), UserID: r.GetUserId(),
		Status: statusName(r.GetStatus()), Points: r.GetPoints(), Position: position,
		Href: receiptHref(r.GetSource(), r.GetReceiptId()), UserHref: userHref(r.GetSource(), r.GetUserId()),
		Anomalies: []string{},
	}
	for _, s := range r.GetStages() {
		row.Stages = append(row.Stages, liveStep{Name: stageName(s.GetStage()), Reported: s.GetReported()})
	}
	if f := r.GetFailure(); f != nil {
		row.Failure = failureText(f)
	}
	for _, a := range r.GetAnomalies() {
		row.Anomalies = append(row.Anomalies, a.GetKind())
	}
	return row
}
