package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/datadir"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/adminclient"
	"github.com/receiptd/receiptd/projections"
)

// adminFlags are the flags `receiptd rebuild` and `receiptd audit` share:
// where the data is (offline), or which server to ask (online).
type adminFlags struct {
	cfg config.Config
	adminclient.Flags
	json       bool
	cpuProfile string
}

func (a *adminFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&a.cfg.DataDir, "data-dir", "./data", "directory of the embedded store and the read models (offline)")
	fs.StringVar(&a.cfg.File, "config", "", "YAML config file: the store to read (offline)")
	a.Flags.Add(fs)
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	fs.StringVar(&a.cpuProfile, "cpuprofile", "", "offline: write a CPU profile of the run to this file (go tool pprof)")
}

// startProfile starts the CPU profile --cpuprofile asked for, if any, and
// returns the function that stops it.
func (a *adminFlags) startProfile() (func(), error) {
	if a.cpuProfile == "" {
		return func() {}, nil
	}
	if a.Server != "" {
		return nil, errors.New("--cpuprofile profiles an offline run; it does not go with --server")
	}
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// parse parses args and loads the config of an offline run.
func (a *adminFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := a.Check(); err != nil || a.Server != "" {
		return err
	}
	return a.cfg.Load()
}

// signalContext ends on SIGINT or SIGTERM: a rebuild or an audit then
// stops and removes its scratch file.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

const rebuildUsage = `Usage: receiptd rebuild [--projection NAME] [--json] [--data-dir DIR] [--config FILE]
       receiptd rebuild --server HOST:PORT [--api-key REF] [--tls | --ca-file PEM] [--projection NAME] [--json]

Replays the log from its first event into fresh read models and swaps them in.
Offline (no server running) it opens the store and the read models directly;
with --server it asks a running receiptd (AuditService.Rebuild), which keeps
answering from the current read models until the new ones have caught up.
Read models: %s (default: all).

`

// runRebuild is `receiptd rebuild`: 0 when the read models were rebuilt, 1
// when the rebuild failed, 2 for a usage error.
func runRebuild(args []string, stdout, stderr io.Writer) int {
	var a adminFlags
	projection := ""
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, rebuildUsage, strings.Join(projections.Names(), ", "))
		fs.PrintDefaults()
	}
	a.add(fs)
	fs.StringVar(&projection, "projection", "", "the read model to rebuild: "+strings.Join(projections.Names(), ", ")+"; empty for all")
	if err := a.parse(fs, args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
		}
		return 2
	}
	stopProfile, err := a.startProfile()
	if err != nil {
		fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
		return 2
	}
	defer stopProfile()
	ctx, stop := signalContext()
	defer stop()

	var res projections.RebuildResult
	if a.Server != "" {
		conn, withAuth, err := a.Dial()
		if err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
			return 2
		}
		defer conn.Close()
		resp, err := receiptdv1.NewAuditServiceClient(conn).Rebuild(withAuth(ctx), &receiptdv1.RebuildRequest{Projection: projection})
		if err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %s: %v\n", a.Server, err)
			return 1
		}
		res = api.RebuildResultFromProto(resp)
	} else {
		if res, err = datadir.Rebuild(ctx, a.cfg, projection); err != nil {
			fmt.Fprintf(stderr, "receiptd %v\n", err)
			return 1
		}
	}
	if a.json {
		if err := printJSON(stdout, res); err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
			return 1
		}
		return 0
	}
	_ = res.WriteText(stdout)
	return 0
}
