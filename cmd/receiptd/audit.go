package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

const auditUsage = `Usage: receiptd audit [--source S] [--limit N] [--json] [--data-dir DIR] [--config FILE]
       receiptd audit --server HOST:PORT [--api-key REF] [--tls | --ca-file PEM] [--source S] [--limit N] [--json]

Rebuilds every read model from the log into a scratch file, compares it with
the live one key by key, and reports the read models that differ (with the
first differing key), the users whose reported balance disagrees with the
derived one, the receipts with anomalies, the quarantined deliveries and the
events that could not be applied. Offline it opens the store and the read
models directly; with --server it asks a running receiptd (AuditService.Audit).

Exit status: 0 every read model matches its rebuild; 1 one differs (run
'receiptd rebuild'); 2 the audit could not run.

`

// Exit statuses of `receiptd audit`, like diff(1)'s.
const (
	auditClean   = 0
	auditDiffers = 1
	auditFailed  = 2
)

// runAudit is `receiptd audit`.
func runAudit(args []string, stdout, stderr io.Writer) int {
	var a adminFlags
	var source string
	var limit int
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditUsage)
		fs.PrintDefaults()
	}
	a.add(fs)
	fs.StringVar(&source, "source", "", "list findings of this source only (the read models are compared whole)")
	fs.IntVar(&limit, "limit", projections.DefaultAuditLimit, fmt.Sprintf("at most this many items per list of findings (at most %d); totals count all", projections.MaxAuditLimit))
	if err := a.parse(fs, args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "receiptd audit: %v\n", err)
		}
		return auditFailed
	}
	if limit < 0 {
		fmt.Fprintln(stderr, "receiptd audit: --limit must not be negative")
		return auditFailed
	}
	stopProfile, err := a.startProfile()
	if err != nil {
		fmt.Fprintf(stderr, "receiptd audit: %v\n", err)
		return auditFailed
	}
	defer stopProfile()
	ctx, stop := signalContext()
	defer stop()

	var rep projections.AuditReport
	if a.server != "" {
		conn, withAuth, err := dialServer(&a)
		if err != nil {
			fmt.Fprintf(stderr, "receiptd audit: %v\n", err)
			return auditFailed
		}
		defer conn.Close()
		resp, err := receiptdv1.NewAuditServiceClient(conn).Audit(withAuth(ctx), &receiptdv1.AuditRequest{Source: source, Limit: int32(min(limit, projections.MaxAuditLimit))})
		if err != nil {
			fmt.Fprintf(stderr, "receiptd audit: %s: %v\n", a.server, err)
			return auditFailed
		}
		if rep, err = api.AuditReportFromProto(resp); err != nil {
			fmt.Fprintf(stderr, "receiptd audit: %s: %v\n", a.server, err)
			return auditFailed
		}
	} else {
		store, views, closeAll, err := openOffline(a.cfg, "audit")
		if err != nil {
			fmt.Fprintf(stderr, "receiptd %v\n", err)
			return auditFailed
		}
		defer closeAll()
		if rep, err = views.Audit(ctx, store, projections.AuditOptions{Source: source, Limit: limit}); err != nil {
			fmt.Fprintf(stderr, "receiptd audit: %v\n", err)
			return auditFailed
		}
	}

	if a.json {
		out := struct {
			Clean bool `json:"clean"`
			projections.AuditReport
		}{rep.Clean(), rep}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "receiptd audit: %v\n", err)
			return auditFailed
		}
	} else {
		printAudit(stdout, rep)
	}
	if !rep.Clean() {
		return auditDiffers
	}
	return auditClean
}

// printAudit writes the report as tables.
func printAudit(w io.Writer, rep projections.AuditReport) {
	scope := "every source"
	if rep.Source != "" {
		scope = "source " + rep.Source
	}
	fmt.Fprintf(w, "audit of the read models against the log at position %s (findings: %s; took %s)\n\n", rep.Position, scope, rep.Took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "READ MODEL\tMATCHES\tKEYS LIVE/REBUILT\tDIFFERENT KEYS\tFIRST DIFFERENCE")
	for _, m := range rep.Models {
		first := "-"
		if f := m.First; f != nil {
			first = fmt.Sprintf("%s %s (%s)", f.Bucket, f.Key, strings.ReplaceAll(f.Kind, "_", " "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\n", m.Name, yesNo(m.Matches), m.Live.Keys, m.Rebuilt.Keys, m.Differences, first)
	}
	tw.Flush()

	section := func(title string, total int64, shown int, header string, rows func(tw *tabwriter.Writer)) {
		fmt.Fprintf(w, "\n%s: %d", title, total)
		if int64(shown) < total {
			fmt.Fprintf(w, " (first %d shown)", shown)
		}
		fmt.Fprintln(w)
		if shown == 0 {
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		rows(tw)
		tw.Flush()
	}
	section("users whose reported balance differs from the derived one", rep.UnreconciledTotal, len(rep.Unreconciled),
		"SOURCE\tUSER\tREPORTED LIFETIME\tAWARDED\tCREDITED\tDERIVED\tREPORTED - AWARDED", func(tw *tabwriter.Writer) {
			for _, u := range rep.Unreconciled {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Source, u.UserID, u.ReportedLifetime, u.Awarded, u.Credited, u.Derived, u.Difference)
			}
		})
	section("receipts with anomalies", rep.AnomaliesTotal, len(rep.Anomalies),
		"SOURCE\tRECEIPT\tUSER\tSTATUS\tANOMALIES", func(tw *tabwriter.Writer) {
			for _, r := range rep.Anomalies {
				kinds := make([]string, 0, len(r.Anomalies))
				for _, a := range r.Anomalies {
					kinds = append(kinds, a.Kind)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Source, r.ReceiptID, r.UserID, r.Status, strings.Join(kinds, ", "))
			}
		})
	section("quarantined deliveries", rep.QuarantinedTotal, len(rep.Quarantined),
		"SOURCE\tPOSITION\tEVENT TYPE\tREASON\tBODY SHA-256", func(tw *tabwriter.Writer) {
			for _, q := range rep.Quarantined {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", q.Source, q.Position, q.ProviderEventType, q.Reason, short(q.BodySHA256))
			}
		})
	section("events the read models could not apply", rep.SkippedTotal, len(rep.Skipped),
		"POSITION\tSTREAM\tTYPE\tERROR", func(tw *tabwriter.Writer) {
			for _, k := range rep.Skipped {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", k.Position, k.Stream, k.Type, k.Error)
			}
		})

	differ := 0
	for _, m := range rep.Models {
		if !m.Matches {
			differ++
		}
	}
	if differ == 0 {
		fmt.Fprintln(w, "\nclean: every read model matches its rebuild from the log")
		return
	}
	fmt.Fprintf(w, "\nNOT CLEAN: %d read model(s) differ from their rebuild from the log; run `receiptd rebuild` (or POST /v1/rebuild on a running server)\n", differ)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// short abbreviates a hash for a table.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
