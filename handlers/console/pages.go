package console

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// pageNames are the templates besides the layout; each defines "content"
// (and "title").
var pageNames = []string{"login", "live", "receipt", "user", "deliveries", "health", "send", "error", "forget", "overdue"}

var funcs = template.FuncMap{
	"status":     statusName,
	"stage":      stageName,
	"failure":    failureText,
	"time":       fmtTime,
	"receiptURL": receiptHref,
	"userURL":    userHref,
	"kind":       ledgerKind,
	"lower":      strings.ToLower,
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}

// view is what every page's template gets.
type view struct {
	Page      string
	Principal string
	CSRF      string
	Sources   []Source
	Data      any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	v := view{Page: page, Sources: c.o.Sources, Data: data}
	if ss := sessionFrom(r.Context()); ss != nil {
		v.Principal, v.CSRF = ss.principal, ss.csrf
	}
	buf := cappedBuffer{max: maxPageBytes}
	if err := c.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console: render", "page", page, "err", err)
		msg := "console: could not render the page"
		if errors.Is(err, errPageTooLarge) {
			msg = fmt.Sprintf("console: the page would be larger than %d MiB, the console's output budget", maxPageBytes>>20)
		}
		http.Error(w, msg, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// apiError renders the page for a query API error: the status it maps to
// and its message.
func (c *Console) apiError(w http.ResponseWriter, r *http.Request, what string, err error) {
	st := status.Convert(err)
	code := http.StatusBadGateway
	switch st.Code() {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		code = http.StatusServiceUnavailable
	}
	c.render(w, r, code, "error", errorData{What: what, Code: st.Code().String(), Message: st.Message()})
}

type errorData struct {
	What, Code, Message string
}

func statusName(s receiptdv1.ReceiptStatus) string {
	return strings.TrimPrefix(s.String(), "RECEIPT_STATUS_")
}

func stageName(s receiptdv1.Stage) string { return strings.TrimPrefix(s.String(), "STAGE_") }

func failureText(f *receiptdv1.Failure) string {
	if f == nil {
		return ""
	}
	s := f.GetName()
	if f.GetCode() != 0 {
		s = fmt.Sprintf("%s (stage %d)", s, f.GetCode())
	}
	if f.GetMessage() != "" {
		s += ": " + f.GetMessage()
	}
	return s
}

func ledgerKind(k receiptdv1.LedgerEntryKind) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k.String(), "LEDGER_ENTRY_KIND_")), "_", " ")
}

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return "–"
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04:05.000Z")
}

func receiptHref(source, id string) string {
	return Prefix + "receipts/" + url.PathEscape(source) + "/" + url.PathEscape(id)
}

func userHref(source, id string) string {
	if id == "" {
		return ""
	}
	return Prefix + "users/" + url.PathEscape(source) + "/" + url.PathEscape(id)
}

// find sends the search box to the receipt or user page.
func (c *Console) find(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, source := strings.TrimSpace(q.Get("id")), q.Get("source")
	if source == "" && len(c.o.Sources) > 0 {
		source = c.o.Sources[0].Name
	}
	if id == "" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if q.Get("kind") == "user" {
		http.Redirect(w, r, userHref(source, id), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, receiptHref(source, id), http.StatusSeeOther)
}

// timelineEvent is one event of a receipt with what the page shows of its
// raw body from the log.
type timelineEvent struct {
	*receiptdv1.ReceiptEvent
	Raw *rawView
}

type receiptData struct {
	Receipt *receiptdv1.Receipt
	Events  []timelineEvent
	More    bool
	RawErr  string
}

func (c *Console) receiptPage(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	ctx := apiContext(r)
	rcpt, err := c.api.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: id, Source: source})
	if err != nil {
		c.apiError(w, r, "receipt "+id, err)
		return
	}
	evs, err := c.api.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: id, Source: source, PageSize: 200})
	if err != nil {
		c.apiError(w, r, "events of receipt "+id, err)
		return
	}
	d := receiptData{Receipt: rcpt, More: evs.GetNextPageToken() != ""}
	raws, err := c.rawBodies(r, source, id, len(evs.GetEvents()))
	if err != nil {
		d.RawErr = err.Error()
	}
	for _, e := range evs.GetEvents() {
		d.Events = append(d.Events, timelineEvent{ReceiptEvent: e, Raw: raws[e.GetPosition()]})
	}
	c.render(w, r, http.StatusOK, "receipt", d)
}

// rawBodies reads a receipt stream's first n events from the log and
// returns what the page shows of each one's raw body (within the page's
// budget), by commit position.
func (c *Console) rawBodies(r *http.Request, source, id string, n int) (map[uint64]*rawView, error) {
	out := map[uint64]*rawView{}
	if n == 0 {
		return out, nil
	}
	stream := aggregate.StreamID(aggregate.CategoryReceipt, source, id)
	evs, err := c.o.Log.ReadStream(r.Context(), stream, 0, n)
	if err != nil {
		return out, fmt.Errorf("read %s from the log: %w", stream, err)
	}
	budget := newRawBudget()
	for _, e := range evs {
		raw, forgotten, err := c.rawBody(r.Context(), e)
		switch {
		case err == nil && forgotten:
			out[e.Position.Commit] = &rawView{Forgotten: true}
		case err == nil && len(raw) > 0:
			v := viewOf(budget, raw, receiptRawHref(source, id, e.Revision))
			out[e.Position.Commit] = &v
		}
	}
	return out, nil
}

type userData struct {
	Balance *receiptdv1.Balance
	// Difference is reported lifetime minus awarded points, when the
	// balance is not reconciled.
	Difference  string
	Ledger      []*receiptdv1.LedgerEntry
	LedgerMore  bool
	ByStatus    []statusGroup
	ReceiptMore bool
}

type statusGroup struct {
	Status   string
	Receipts []*receiptdv1.Receipt
}

func (c *Console) userPage(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	ctx := apiContext(r)
	b, err := c.api.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: id, Source: source})
	if err != nil {
		c.apiError(w, r, "user "+id, err)
		return
	}
	led, err := c.api.ListUserLedger(ctx, &receiptdv1.ListUserLedgerRequest{UserId: id, Source: source, PageSize: 200})
	if err != nil {
		c.apiError(w, r, "ledger of user "+id, err)
		return
	}
	rs, err := c.api.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: id, Source: source, PageSize: 200})
	if err != nil {
		c.apiError(w, r, "receipts of user "+id, err)
		return
	}
	d := userData{Balance: b, Ledger: led.GetEntries(), LedgerMore: led.GetNextPageToken() != "", ReceiptMore: rs.GetNextPageToken() != ""}
	if !b.GetReconciled() {
		rep, err1 := decimal.NewFromString(b.GetReportedLifetimePoints())
		awd, err2 := decimal.NewFromString(b.GetAwardedPoints())
		if err1 == nil && err2 == nil {
			d.Difference = rep.Sub(awd).String()
		}
	}
	groups := map[receiptdv1.ReceiptStatus][]*receiptdv1.Receipt{}
	for _, rc := range rs.GetReceipts() {
		groups[rc.GetStatus()] = append(groups[rc.GetStatus()], rc)
	}
	for _, s := range []receiptdv1.ReceiptStatus{receiptdv1.ReceiptStatus_RECEIPT_STATUS_FAILED, receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS, receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED} {
		d.ByStatus = append(d.ByStatus, statusGroup{Status: statusName(s), Receipts: groups[s]})
	}
	c.render(w, r, http.StatusOK, "user", d)
}

type healthData struct {
	Status
	Ready   bool
	Lag     string
	Uptime  string
	Checked string
	// Destinations are the feed's push destinations (FeedService,
	// through the API as the signed-in key); DestinationsErr why they
	// could not be listed.
	Destinations    []destinationRow
	DestinationsErr string
}

// destinationRow is one feed destination on the Health page.
type destinationRow struct {
	*receiptdv1.Destination
	Lag string
}

func (c *Console) healthPage(w http.ResponseWriter, r *http.Request) {
	s := c.o.Status(r.Context())
	d := healthData{Status: s, Ready: s.StoreErr == nil, Checked: time.Now().UTC().Format(time.RFC3339)}
	switch {
	case s.HeadErr != nil:
		d.Lag = "unknown: " + s.HeadErr.Error()
	case !s.Checkpoint.Less(s.Head):
		d.Lag = "0 (caught up)"
	default:
		d.Lag = fmt.Sprintf("%d", s.Head.Commit-s.Checkpoint.Commit)
	}
	if !s.Started.IsZero() {
		d.Uptime = time.Since(s.Started).Round(time.Second).String()
	}
	if l, err := c.feedAPI.ListDestinations(apiContext(r), &receiptdv1.ListDestinationsRequest{}); err != nil {
		d.DestinationsErr = status.Convert(err).Message()
	} else {
		for _, dst := range l.GetDestinations() {
			d.Destinations = append(d.Destinations, destinationRow{Destination: dst, Lag: dst.GetLag().AsDuration().Round(time.Millisecond).String()})
		}
	}
	c.render(w, r, http.StatusOK, "health", d)
}

// destinationAction pauses or resumes a feed destination (FeedService,
// as the signed-in key), then shows the Health page again.
func (c *Console) destinationAction(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "resume":
		_, err = c.feedAPI.ResumeDestination(apiContext(r), &receiptdv1.ResumeDestinationRequest{Name: name})
	case "pause":
		_, err = c.feedAPI.PauseDestination(apiContext(r), &receiptdv1.PauseDestinationRequest{Name: name})
	default:
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	if err != nil {
		c.apiError(w, r, r.PathValue("action")+" destination", err)
		return
	}
	http.Redirect(w, r, Prefix+"health", http.StatusSeeOther)
}
