package projections

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The reports as text: what `receiptd audit` and `receiptd rebuild` print
// without --json (their JSON is the structs' own encoding).

// WriteText writes the report as tables: the read models compared, then
// each list of findings with its total, then whether the audit is clean.
// It returns the first error writing to w.
func (r AuditReport) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	scope := "every source"
	if r.Source != "" {
		scope = "source " + r.Source
	}
	fmt.Fprintf(ew, "audit of the read models against the log at position %s (findings: %s; took %s)\n\n", r.Position, scope, r.Took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "READ MODEL\tMATCHES\tKEYS LIVE/REBUILT\tDIFFERENT KEYS\tFIRST DIFFERENCE")
	for _, m := range r.Models {
		first := "-"
		if f := m.First; f != nil {
			first = fmt.Sprintf("%s %s (%s)", f.Bucket, f.Key, strings.ReplaceAll(f.Kind, "_", " "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\n", m.Name, yesNo(m.Matches), m.Live.Keys, m.Rebuilt.Keys, m.Differences, first)
	}
	tw.Flush()

	section := func(title string, total int64, shown int, header string, rows func(tw *tabwriter.Writer)) {
		fmt.Fprintf(ew, "\n%s: %d", title, total)
		if int64(shown) < total {
			fmt.Fprintf(ew, " (first %d shown)", shown)
		}
		fmt.Fprintln(ew)
		if shown == 0 {
			return
		}
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		rows(tw)
		tw.Flush()
	}
	section("users whose reported balance differs from the derived one", r.UnreconciledTotal, len(r.Unreconciled),
		"SOURCE\tUSER\tREPORTED LIFETIME\tAWARDED\tCREDITED\tDERIVED\tREPORTED - AWARDED", func(tw *tabwriter.Writer) {
			for _, u := range r.Unreconciled {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Source, u.UserID, u.ReportedLifetime, u.Awarded, u.Credited, u.Derived, u.Difference)
			}
		})
	section("receipts with anomalies", r.AnomaliesTotal, len(r.Anomalies),
		"SOURCE\tRECEIPT\tUSER\tSTATUS\tANOMALIES", func(tw *tabwriter.Writer) {
			for _, v := range r.Anomalies {
				kinds := make([]string, 0, len(v.Anomalies))
				for _, a := range v.Anomalies {
					kinds = append(kinds, a.Kind)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Source, v.ReceiptID, v.UserID, v.Status, strings.Join(kinds, ", "))
			}
		})
	section("quarantined deliveries", r.QuarantinedTotal, len(r.Quarantined),
		"SOURCE\tPOSITION\tEVENT TYPE\tREASON\tBODY SHA-256", func(tw *tabwriter.Writer) {
			for _, q := range r.Quarantined {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", q.Source, q.Position, q.ProviderEventType, q.Reason, short(q.BodySHA256))
			}
		})
	section("events the read models could not apply", r.SkippedTotal, len(r.Skipped),
		"POSITION\tSTREAM\tTYPE\tERROR", func(tw *tabwriter.Writer) {
			for _, k := range r.Skipped {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", k.Position, k.Stream, k.Type, k.Error)
			}
		})

	if differ := r.Differing(); differ == 0 {
		fmt.Fprintln(ew, "\nclean: every read model matches its rebuild from the log")
	} else {
		fmt.Fprintf(ew, "\nNOT CLEAN: %d read model(s) differ from their rebuild from the log; run `receiptd rebuild` (or POST /v1/rebuild on a running server)\n", differ)
	}
	return ew.err
}

// WriteText writes the result: what was rebuilt, then a table of the read
// models' keys and digests. It returns the first error writing to w.
func (r RebuildResult) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	what := "every read model"
	if r.Projection != "" {
		what = "read model " + r.Projection
	}
	fmt.Fprintf(ew, "rebuilt %s from the log: %d events replayed in %s, swapped in at position %s\n\n",
		what, r.Events, r.Took.Round(time.Millisecond), r.Position)
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "READ MODEL\tKEYS\tDIGEST (SHA-256, at position %s)\n", r.SummaryPosition)
	for _, m := range r.Models {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", m.Name, m.Keys, m.Digest)
	}
	tw.Flush()
	return ew.err
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

// errWriter keeps the first error of its writes and writes nothing after
// it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
