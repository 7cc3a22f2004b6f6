package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/handlers/api"
)

// progressFile is the destinations' progress, beside the read models.
const progressFile = "destinations.db"

// startPusher opens the destinations' progress file and starts pushing
// the feed to every configured destination, until ctx ends or stop is
// called; stop stops it, waits for it and closes the file. Without
// destinations it returns a nil pusher and does nothing.
func startPusher(ctx context.Context, cfg config.Config, views feed.Source, subjects api.Subjects, reg prometheus.Registerer, logger *slog.Logger) (p *feed.Pusher, stop func(), err error) {
	if len(cfg.Destinations) == 0 {
		return nil, func() {}, nil
	}
	dests, err := cfg.FeedDestinations()
	if err != nil {
		return nil, nil, err
	}
	prog, err := feed.OpenProgress(filepath.Join(cfg.DataDir, progressFile), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	p, err = feed.NewPusher(dests, feed.PusherOptions{
		Source: views, Progress: prog, Render: api.NewFeedRenderer(subjects).JSON, Registerer: reg, Logger: logger,
	})
	if err != nil {
		prog.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("feed: destinations stopped", "err", err)
		}
	}()
	logger.Info("pushing the feed", "destinations", len(dests))
	return p, func() {
		cancel()
		<-done
		if err := prog.Close(); err != nil {
			logger.Warn("feed: close the destinations' progress", "err", err)
		}
	}, nil
}

// newFeedService is the FeedService over the read models' feed, with the
// pusher's destinations (nil: none), and its subscribers gauge.
func newFeedService(views feed.Source, sources []string, opts []api.Option, pusher *feed.Pusher, reg prometheus.Registerer) (*api.FeedService, error) {
	var feedOpts []api.FeedOption
	if pusher != nil {
		feedOpts = append(feedOpts, api.WithDestinations(pusher))
	}
	svc, err := api.NewFeedService(views, sources, opts, feedOpts...)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "receiptd_feed_subscribers", Help: "Feed subscriptions open (FeedService.Subscribe, GET /v1/feed).",
	}, func() float64 { return float64(svc.Subscribers()) }))
	return svc, nil
}
