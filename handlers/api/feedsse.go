package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// FeedPath is the REST route of the feed (FeedService.Subscribe) as
// Server-Sent Events.
const FeedPath = "/v1/feed"

// serveFeed is GET /v1/feed: FeedService.Subscribe through the gRPC
// server (so the access interceptor judges it, and filters a user's
// feed), answered as Server-Sent Events (text/event-stream) rather than
// the gateway's newline-delimited JSON, so that a browser's or a phone's
// EventSource reads it and resumes it:
//
//	id: <position>
//	event: <kind>
//	data: <the FeedEvent, as the REST API renders it>
//
// A checkpoint is an event "checkpoint" with its position as id, so an
// EventSource's Last-Event-ID moves past filtered-out events too. Query
// parameters: after_position, kinds (repeated), sources (repeated). A
// Last-Event-ID header (an EventSource reconnecting) takes precedence
// over after_position. An error before the stream is established is an
// HTTP error answer like any route's; one after it (the server shutting
// down) is an event "error" whose data is the status, and the end of the
// answer: the client reconnects with Last-Event-ID.
func (g *gateway) serveFeed(client receiptdv1.FeedServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		_, outbound := runtime.MarshalerForRequest(g.mux, r)
		fail := func(ctx context.Context, err error) {
			runtime.HTTPError(ctx, g.mux, outbound, w, r, err)
		}
		req, err := subscribeRequest(r)
		if err != nil {
			fail(r.Context(), err)
			return
		}
		ctx, err := runtime.AnnotateContext(r.Context(), g.mux, r, receiptdv1.FeedService_Subscribe_FullMethodName, runtime.WithHTTPPathPattern(FeedPath))
		if err != nil {
			fail(r.Context(), status.Errorf(codes.InvalidArgument, "Subscribe: %v", err))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := client.Subscribe(ctx, req)
		if err != nil {
			fail(ctx, err)
			return
		}
		// The header comes once the subscription is established; an error
		// before that is the call's status.
		if md, err := stream.Header(); err != nil || len(md.Get(StreamOpenHeader)) == 0 {
			_, err = stream.Recv()
			if err == nil || errors.Is(err, io.EOF) {
				err = status.Error(codes.Internal, "Subscribe: the stream ended before it was established")
			}
			fail(ctx, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					st := status.Convert(err)
					data, _ := feedJSON.Marshal(st.Proto())
					fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
					_ = rc.Flush()
				}
				return
			}
			data, err := feedJSON.Marshal(m)
			if err != nil {
				g.o.Logger.ErrorContext(ctx, "api: feed: marshal an event", "position", m.GetPosition(), "err", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", m.GetPosition(), m.GetKind(), data); err != nil {
				return // the client left, or stopped reading (the write deadline)
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return
			}
		}
	}
}

// subscribeRequest reads a SubscribeRequest from GET /v1/feed's query and
// Last-Event-ID header.
func subscribeRequest(r *http.Request) (*receiptdv1.SubscribeRequest, error) {
	q := r.URL.Query()
	req := &receiptdv1.SubscribeRequest{}
	after := q.Get("after_position")
	if after == "" {
		after = q.Get("afterPosition")
	}
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		after = id
	}
	if after != "" {
		p, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "Subscribe: after_position (or Last-Event-ID) %q is not a position", after)
		}
		req.AfterPosition = p
	}
	for name, vs := range q {
		switch name {
		case "after_position", "afterPosition":
		case "kinds":
			req.Kinds = append(req.Kinds, splitList(vs)...)
		case "sources":
			req.Sources = append(req.Sources, splitList(vs)...)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "Subscribe: unknown query parameter %q (after_position, kinds, sources)", name)
		}
	}
	return req, nil
}

// splitList accepts ?kinds=a&kinds=b and ?kinds=a,b.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// registerFeed registers FeedService's REST routes on the gateway: the
// generated ones (the destinations' admin routes), then GET /v1/feed as
// Server-Sent Events, which takes precedence over the generated
// newline-delimited JSON (the mux tries later registrations first).
func (g *gateway) registerFeed(ctx context.Context, conn *grpc.ClientConn) error {
	if err := receiptdv1.RegisterFeedServiceHandler(ctx, g.mux, conn); err != nil {
		return fmt.Errorf("register FeedService: %w", err)
	}
	if err := g.mux.HandlePath(http.MethodGet, FeedPath, g.serveFeed(receiptdv1.NewFeedServiceClient(conn))); err != nil {
		return fmt.Errorf("register %s: %w", FeedPath, err)
	}
	return nil
}
