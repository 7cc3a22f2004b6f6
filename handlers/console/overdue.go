package console

import (
	"net/http"
	"time"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// The Overdue page (issue 16): each source's receipts still in progress
// after its whole retry window, the longest waiting first, from
// ListReceipts with status "overdue" (a client of the API like any other).

// overdueLimit is the most receipts the page lists per source.
const overdueLimit = 200

type overdueData struct {
	Source   string
	Receipts []overdueRow
	More     bool
	// Sources are the configured sources, for the page's source picker.
	Sources []Source
}

type overdueRow struct {
	Receipt *receiptdv1.Receipt
	// FirstRecorded is the receipt's first recorded delivery; Waiting how
	// long ago that was, by the server's clock as the anomaly states it.
	FirstRecorded string
	Detail        string
	// Last is the latest stage reported.
	Last string
}

func (c *Console) overduePage(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	if source == "" && len(c.o.Sources) > 0 {
		source = c.o.Sources[0].Name
	}
	resp, err := c.api.ListReceipts(apiContext(r), &receiptdv1.ListReceiptsRequest{Source: source, Status: "overdue", PageSize: overdueLimit})
	if err != nil {
		c.apiError(w, r, "overdue receipts of "+source, err)
		return
	}
	d := overdueData{Source: source, More: resp.GetNextPageToken() != "", Sources: c.o.Sources}
	for _, rc := range resp.GetReceipts() {
		row := overdueRow{Receipt: rc, Last: "–"}
		var first time.Time
		for _, s := range rc.GetStages() {
			if at := s.GetRecordedAt(); at != nil && (first.IsZero() || at.AsTime().Before(first)) {
				first = at.AsTime()
			}
			if s.GetReported() {
				row.Last = stageName(s.GetStage())
			}
		}
		if !first.IsZero() {
			row.FirstRecorded = first.UTC().Format("2006-01-02 15:04:05Z")
		}
		for _, a := range rc.GetAnomalies() {
			if a.GetKind() == "overdue" {
				row.Detail = a.GetDetail()
			}
		}
		d.Receipts = append(d.Receipts, row)
	}
	c.render(w, r, http.StatusOK, "overdue", d)
}
