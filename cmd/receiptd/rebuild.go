package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/datadir"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/secret"
	"github.com/receiptd/receiptd/projections"
)

// adminFlags are the flags `receiptd rebuild` and `receiptd audit` share:
// where the data is (offline), or which server to ask (online).
type adminFlags struct {
	cfg        config.Config
	server     string
	apiKey     string
	tls        bool
	caFile     string
	json       bool
	cpuProfile string
}

func (a *adminFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&a.cfg.DataDir, "data-dir", "./data", "directory of the embedded store and the read models (offline)")
	fs.StringVar(&a.cfg.File, "config", "", "YAML config file: the store to read (offline)")
	fs.StringVar(&a.server, "server", "", "gRPC address of a running receiptd to ask instead (online), e.g. 127.0.0.1:9090")
	fs.StringVar(&a.apiKey, "api-key", "", "with --server: an API key holding the admin scope (literal, env:NAME or file:PATH)")
	fs.BoolVar(&a.tls, "tls", false, "with --server: connect over TLS, verifying the server's certificate against the system's roots")
	fs.StringVar(&a.caFile, "ca-file", "", "with --server: connect over TLS, verifying the server's certificate against the PEM certificates in this file")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	fs.StringVar(&a.cpuProfile, "cpuprofile", "", "offline: write a CPU profile of the run to this file (go tool pprof)")
}

// startProfile starts the CPU profile --cpuprofile asked for, if any, and
// returns the function that stops it.
func (a *adminFlags) startProfile() (func(), error) {
	if a.cpuProfile == "" {
		return func() {}, nil
	}
	if a.server != "" {
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
	if a.server != "" {
		return nil
	}
	if a.apiKey != "" || a.tls || a.caFile != "" {
		return errors.New("--api-key, --tls and --ca-file go with --server")
	}
	return a.cfg.Load()
}

// dialServer connects to a running receiptd's gRPC port, sending the API
// key, if any, with every call.
func dialServer(a *adminFlags) (*grpc.ClientConn, func(context.Context) context.Context, error) {
	creds := insecure.NewCredentials()
	if a.tls || a.caFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.caFile != "" {
			pem, err := os.ReadFile(a.caFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", a.caFile)
			}
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(a.server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, err
	}
	var auth string
	if a.apiKey != "" {
		key, err := secret.Resolve(a.apiKey)
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("--api-key: %w", err)
		}
		auth = "Bearer " + string(key)
	}
	withAuth := func(ctx context.Context) context.Context {
		if auth == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	return conn, withAuth, nil
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
	if a.server != "" {
		conn, withAuth, err := dialServer(&a)
		if err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
			return 2
		}
		defer conn.Close()
		resp, err := receiptdv1.NewAuditServiceClient(conn).Rebuild(withAuth(ctx), &receiptdv1.RebuildRequest{Projection: projection})
		if err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %s: %v\n", a.server, err)
			return 1
		}
		res = api.RebuildResultFromProto(resp)
	} else {
		store, views, closeAll, err := datadir.OpenOffline(a.cfg, "rebuild")
		if err != nil {
			fmt.Fprintf(stderr, "receiptd %v\n", err)
			return 1
		}
		defer closeAll()
		if projection != "" {
			// One read model is copied at the others' position: bring
			// them to the log's head first, as a server would.
			if err := projections.NewRunner(store, views, nil).CatchUp(ctx); err != nil {
				fmt.Fprintf(stderr, "receiptd rebuild: catch the read models up to the log (rebuild them all if they cannot be): %v\n", err)
				return 1
			}
		}
		res, err = views.Rebuild(ctx, store, projections.RebuildOptions{Projection: projection})
		if err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
			return 1
		}
	}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "receiptd rebuild: %v\n", err)
			return 1
		}
		return 0
	}
	_ = res.WriteText(stdout)
	return 0
}
