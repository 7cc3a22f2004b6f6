package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// A rebuild is timed two ways, on a log the same binary wrote:
//
//   - offline: `receiptd rebuild --data-dir D --config C` as a whole
//     process, from its start to its exit, the server stopped;
//   - catch-up: the read models deleted (everything in the data dir but
//     the log), a fresh `receiptd serve` on the log, timed from the
//     process's start until receiptd_projection_checkpoint reaches the
//     head.
type rebuildResult struct {
	events    float64
	total     time.Duration // process start to exit (offline) or to checkpoint at head
	afterOpen time.Duration // catch-up: "listening" to checkpoint at head
	cpu       float64       // the process's CPU seconds
	maxRSS    float64       // offline: the process's peak resident memory (getrusage)
	cold      bool          // the page cache was dropped before the start
}

func (r rebuildResult) rate() float64 {
	if r.total <= 0 {
		return 0
	}
	return r.events / r.total.Seconds()
}

// stopCaughtUp waits until srv's read models are at the head of its log,
// stops it, and returns the head (the number of events in the log).
func stopCaughtUp(ctx context.Context, srv *child, limit time.Duration) (float64, error) {
	if err := waitCaughtUp(ctx, srv, limit); err != nil {
		return 0, err
	}
	m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "receiptd_projection_checkpoint")
	if err != nil {
		return 0, err
	}
	if err := srv.stop(); err != nil {
		return 0, fmt.Errorf("receiptd: %w", err)
	}
	return m["receiptd_projection_checkpoint"], nil
}

// offlineRebuild runs `b rebuild` on the stopped server's dataDir, whose
// log holds events events, with the page cache dropped (cold) or the log
// read once beforehand (warm).
func offlineRebuild(ctx context.Context, b receiptdBin, dataDir string, events float64, cold bool, o options, profileName string) (rebuildResult, error) {
	r := rebuildResult{events: events}
	if cold {
		r.cold = dropPageCache()
	} else if err := warmLog(dataDir, o.logFiles); err != nil {
		return r, err
	}
	args := []string{"rebuild", "--data-dir", dataDir, "--config", configPath(dataDir)}
	if o.profileDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(o.profileDir, "receiptd-"+profileName+".pprof"))
	}
	cmd := b.command(args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r.total = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("%s rebuild --data-dir %s: %w\n%s", b.path, dataDir, err, out.String())
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	st := cmd.ProcessState
	r.cpu = (st.UserTime() + st.SystemTime()).Seconds()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = float64(ru.Maxrss) * 1024 // KiB on Linux
	}
	return r, nil
}

// catchUp deletes the stopped server's read models, starts a fresh b on
// the log of head events, and times it until its checkpoint reaches head.
func catchUp(ctx context.Context, b receiptdBin, dataDir string, head float64, cold bool, o options, profileName string) (rebuildResult, error) {
	r := rebuildResult{events: head}
	if err := removeReadModels(dataDir, o.logFiles); err != nil {
		return r, err
	}
	if cold {
		r.cold = dropPageCache()
	}
	srv, err := startReceiptd(b, dataDir, o.profileDir != "")
	if err != nil {
		return r, err
	}
	defer srv.kill()
	listening := time.Now()
	stopProfile := profile(ctx, srv, o, profileName, 0, 10*time.Second)
	for {
		m, err := metrics(ctx, "http://"+srv.httpAddr+"/metrics", "receiptd_projection_checkpoint")
		if err != nil {
			return r, err
		}
		if m["receiptd_projection_checkpoint"] >= head {
			done := time.Now()
			r.total, r.afterOpen, r.cpu = done.Sub(srv.started), done.Sub(listening), srv.cpuSeconds()
			stopProfile() // the profile's window, if any, ends before the server does
			return r, srv.stop()
		}
		// Each scrape costs the server a little CPU: 20 a second keeps
		// that under 1% and the timing within 50 ms.
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
