package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/datadir"
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
		recorded, destroyed, err := datadir.Reforget(ctx, cfg, mem)
		if err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "the log records %d destroyed keys; %d were in the key store again and are destroyed now\n", recorded, destroyed)
		return 0
	}
	if cfg.Store.Kind != "embedded" {
		return fail(2, errors.New("only the embedded store is sealed or rewrapped in place: a KurrentDB log cannot be rewritten (README: Personal data)"))
	}
	keyring, err := datadir.OpenKeyring(ctx, cfg, nil, mem)
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
	res, err := datadir.Seal(ctx, cfg, keyring, logger)
	if err != nil {
		return fail(1, err)
	}
	fmt.Fprintf(stdout, "sealed %d of %d events (%d already sealed, %d about no one, %d of unconfigured sources) under %d subjects' keys in %s; positions and ids unchanged\n",
		res.Sealed, res.Events, res.AlreadySealed, res.NoSubject, res.NoSource, len(res.Subjects), res.Took.Round(time.Millisecond))
	if res.Sealed > 0 {
		fmt.Fprintln(stdout, "the log was rewritten in place; its old file was overwritten with zeros and removed")
	}
	fmt.Fprintf(stdout, "the read models were overwritten with zeros and rebuilt from the sealed log (%d events)\n", res.Rebuilt)
	return 0
}
