// Command receiptd receives signed receipt and rewards webhooks, appends them
// to an event log, and serves the resolved receipts and balances over gRPC and
// REST.
//
//	receiptd serve [--data-dir DIR] [--http-addr ADDR] [--grpc-addr ADDR] [--config FILE]
//	receiptd audit [--data-dir DIR] [--config FILE] [--source S] [--limit N] [--json]
//	receiptd rebuild [--data-dir DIR] [--config FILE] [--projection NAME] [--json]
//	receiptd backup --to FILE [--data-dir DIR | --server HOST:GRPC_PORT]
//	receiptd restore --from FILE [--data-dir DIR] [--force]
//	receiptd privacy seal|rewrap --data-dir DIR --config FILE
//
// audit and rebuild open the data directly when no server runs on it, or
// ask a running server with --server HOST:GRPC_PORT.
//
// This package is wiring only: flags, construction and lifecycle, and the
// commands' output. What it wires lives beside the code it belongs to: the
// config file (schema, defaults, validation, each section's conversion) in
// config, the memory budget's plan in internal/membudget, opening a data
// directory and the offline audit, rebuild, backup, restore, seal and
// reforget in datadir, the --server client in internal/adminclient, the
// quarantine and the ingest rate limit in handlers/webhook, the read
// models' metrics in projections (Collector), the proto conversions in
// handlers/api, the certificate reloading in internal/tlsreload. It
// imports no aggregate; nothing imports it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/receiptd/receiptd/config"
)

const usage = `receiptd: receipt and rewards webhooks into a trustworthy, queryable history.

Usage:
  receiptd serve [flags]    run the server
  receiptd audit [flags]    compare the read models with a rebuild from the log
  receiptd rebuild [flags]  rebuild the read models from the log and swap them in
  receiptd backup [flags]   copy the log to a backup file (online with --server)
  receiptd restore [flags]  restore a backup into a data directory and rebuild the read models
  receiptd privacy seal|rewrap [flags]  seal a log written before privacy; rewrap the data keys (offline)
  receiptd version          print the version

Run 'receiptd COMMAND -h' for the flags.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch args[0] {
	case "serve":
		var cfg config.Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		addServeFlags(fs, &cfg)
		startPprof := addPprofFlag(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "receiptd serve: unexpected arguments %q\n", fs.Args())
			return 2
		}
		if err := cfg.Load(); err != nil {
			fmt.Fprintf(stderr, "receiptd serve: %v\n", err)
			return 2
		}
		if err := startPprof(logger); err != nil {
			fmt.Fprintf(stderr, "receiptd serve: %v\n", err)
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, cfg, logger); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("receiptd stopped", "err", err)
			return 1
		}
		return 0
	case "audit":
		return runAudit(args[1:], stdout, stderr)
	case "rebuild":
		return runRebuild(args[1:], stdout, stderr)
	case "backup":
		return runBackup(args[1:], stdout, stderr)
	case "restore":
		return runRestore(args[1:], stdout, stderr)
	case "privacy":
		return runPrivacy(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "receiptd", version)
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "receiptd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// addServeFlags registers the serve flags on fs.
func addServeFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded store and the read models")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "listen address for webhooks, REST, health and metrics")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":9090", "listen address for gRPC")
	fs.StringVar(&c.File, "config", "", "YAML config file (sources, store, limits)")
}

// printJSON prints v as the --json output of a command: indented, one
// value.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
