package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/internal/membudget"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

const privacyUsage = `Usage:
  receiptd privacy seal     --data-dir DIR --config FILE   seal a log written before privacy was configured
  receiptd privacy rewrap   --data-dir DIR --config FILE   rewrap every data key under the first key-encryption key
  receiptd privacy reforget --data-dir DIR --config FILE   destroy again every key the log records as destroyed
                                                           (after restoring the key store from a backup)

On the embedded store all three are offline: stop the server first
(reforget also runs against KurrentDB, servers running). The config must
hold the privacy section and, for seal, the sources (their secrets
resolved as for serve: seal runs each stored delivery through its
provider again to find whose it is).
`

// runPrivacy runs `receiptd privacy SUBCOMMAND`.
func runPrivacy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, privacyUsage)
		return 2
	}
	var cfg config.Config
	fs := flag.NewFlagSet("privacy "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, privacyUsage); fs.PrintDefaults() }
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "directory of the embedded store, the read models and the key file")
	fs.StringVar(&cfg.File, "config", "", "YAML config file with the privacy section (and the sources, for seal)")
	sub := args[0]
	if sub != "seal" && sub != "rewrap" && sub != "reforget" {
		fmt.Fprintf(stderr, "receiptd privacy: unknown command %q\n\n%s", sub, privacyUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "receiptd privacy %s: unexpected arguments %q\n", sub, fs.Args())
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "receiptd privacy %s: %v\n", sub, err)
		return code
	}
	if err := cfg.Load(); err != nil {
		return fail(2, err)
	}
	if cfg.Privacy == nil {
		return fail(2, errors.New("the config has no privacy section: nothing to seal with"))
	}
	ctx, stop := signalContext()
	defer stop()
	mem := cfg.Memory(false) // within the memory budget, as a rebuild
	mem.Apply(nil)
	if sub == "reforget" {
		return reforget(ctx, cfg, mem, stdout, fail)
	}
	if cfg.Store.Kind != "embedded" {
		return fail(2, errors.New("only the embedded store is sealed or rewrapped in place: a KurrentDB log cannot be rewritten (README: Personal data)"))
	}
	keyring, err := openKeyring(ctx, cfg, nil, mem)
	if err != nil {
		return fail(1, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir))
	}
	defer keyring.Close()
	if sub == "rewrap" {
		n, err := keyring.Rewrap(ctx)
		if err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "rewrapped %d keys under the first key-encryption key; the others may now leave the config\n", n)
		return 0
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := sealLog(ctx, cfg, keyring, logger)
	if err != nil {
		return fail(1, err)
	}
	fmt.Fprintf(stdout, "sealed %d of %d events (%d already sealed, %d about no one, %d of unconfigured sources) under %d subjects' keys in %s; positions and ids unchanged\n",
		res.Sealed, res.Events, res.AlreadySealed, res.NoSubject, res.NoSource, len(res.Subjects), res.took.Round(time.Millisecond))
	if res.Sealed > 0 {
		fmt.Fprintln(stdout, "the log was rewritten in place; its old file was overwritten with zeros and removed")
	}
	fmt.Fprintf(stdout, "the read models were overwritten with zeros and rebuilt from the sealed log (%d events)\n", res.rebuilt)
	return 0
}

// reforget destroys again the keys the log's subject.forgotten.v1 events
// name: a key store restored from a backup older than a forget holds that
// subject's key again.
func reforget(ctx context.Context, cfg config.Config, mem membudget.Plan, stdout io.Writer, fail func(int, error) int) int {
	store, err := openStore(cfg, mem)
	if err != nil {
		return fail(1, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir))
	}
	defer store.Close()
	keyring, err := openKeyring(ctx, cfg, store, mem)
	if err != nil {
		return fail(1, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir))
	}
	defer keyring.Close()
	ids, err := privacy.ForgottenKeys(ctx, store)
	if err != nil {
		return fail(1, err)
	}
	destroyed, err := keyring.DestroyKeys(ctx, ids)
	if err != nil {
		return fail(1, err)
	}
	fmt.Fprintf(stdout, "the log records %d destroyed keys; %d were in the key store again and are destroyed now\n", len(ids), len(destroyed))
	return 0
}

// sealResult is what sealLog did.
type sealResult struct {
	webhook.LogSealStats
	rebuilt int64
	took    time.Duration
}

// sealLog seals every event of the embedded log about a person in place
// (webhook.LogSealer through bolt.Rewrite: same positions, ids, streams,
// revisions, times and types; the old file zeroed), then replaces the
// read models, which may hold personal attributes in the clear, by a
// rebuild from the sealed log.
func sealLog(ctx context.Context, cfg config.Config, keys *privacy.Keyring, logger *slog.Logger) (sealResult, error) {
	start := time.Now()
	var res sealResult
	providers, err := cfg.Providers(logger)
	if err != nil {
		return res, err
	}
	// Hold the read models' lock throughout: a server cannot start on
	// the data dir meanwhile.
	viewsPath := filepath.Join(cfg.DataDir, "views.db")
	views, err := projections.Open(viewsPath, projections.WithLockTimeout(time.Second), projections.WithCacheBytes(cfg.Memory(false).Records))
	if err != nil {
		return res, fmt.Errorf("%w (is a server running on %s?)", err, cfg.DataDir)
	}
	sealer := webhook.NewLogSealer(ctx, keys, providers)
	_, err = bolt.Rewrite(filepath.Join(cfg.DataDir, "events.db"), time.Second, sealer.Seal)
	res.LogSealStats = sealer.Stats()
	views.Close()
	if err != nil {
		return res, err
	}
	// The read models were built from the clear log: zero them and build
	// them again from the sealed one.
	_ = projections.RemoveScratch(viewsPath)
	if err := privacy.Shred(viewsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("shred the read models: %w", err)
	}
	store, views, closeAll, err := openOffline(cfg, "rebuild")
	if err != nil {
		return res, err
	}
	defer closeAll()
	rb, err := views.Rebuild(ctx, store, projections.RebuildOptions{})
	if err != nil {
		return res, fmt.Errorf("rebuild the read models: %w", err)
	}
	res.rebuilt, res.took = rb.Events, time.Since(start)
	return res, nil
}
