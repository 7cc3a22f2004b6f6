package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// Bounds on what a page shows of providers' raw bodies. A body is whatever
// a provider (or anyone holding a Reward or RETM token) sent, so a page
// shows a bounded part of it, whatever it holds; the whole body is a
// download (rawDownload).
const (
	// maxRawPreview bounds the text a page shows of one raw body.
	maxRawPreview = 16 << 10
	// maxRawDepth: a body nested deeper is shown as sent, not indented
	// (indenting costs two spaces per level on every line).
	maxRawDepth = 16
	// pageRawBudget bounds the raw body text of one page, all bodies
	// together, in bytes of HTML (escaped); past it a body is a download
	// link only.
	pageRawBudget = 1 << 20
	// maxPageBytes bounds a rendered page: past it the page is an error.
	// A backstop: the raw bodies are bounded above and every other text a
	// provider can put on a page is short (clip).
	maxPageBytes = 8 << 20
	// maxClip bounds a provider's short text on a page (an event type, a
	// quarantine reason).
	maxClip = 1024
)

// rawView is what a page shows of one raw body.
type rawView struct {
	// Text is the body indented, or as sent if it is nested deeper than
	// maxRawDepth or is not JSON; a prefix of it if Truncated.
	Text      string
	Indented  bool
	Truncated bool
	// Omitted: nothing is shown, the page's budget is spent.
	Omitted bool
	// Size is the whole body's length in bytes.
	Size int
	// Href downloads the whole body.
	Href string
	// Forgotten: the body was sealed under the data key of a person since
	// forgotten; there is nothing to show or download.
	Forgotten bool
}

// rawBudget is what is left of a page's pageRawBudget.
type rawBudget struct{ left int }

func newRawBudget() *rawBudget { return &rawBudget{left: pageRawBudget} }

// text is a raw body, as the log or the query API returns it.
type text interface{ ~string | ~[]byte }

// viewOf returns what the page shows of raw, and spends it from b.
func viewOf[T text](b *rawBudget, raw T, href string) rawView {
	v := rawView{Size: len(raw), Href: href}
	limit := min(maxRawPreview, b.left)
	if limit <= 0 {
		v.Omitted = true
		return v
	}
	out, truncated, ok := indentBounded(raw, limit, maxRawDepth)
	if ok {
		v.Text, v.Indented = string(out), true
	} else {
		truncated = len(raw) > limit
		v.Text = string(raw[:runeStart(raw, limit)])
	}
	v.Truncated = truncated
	b.left -= htmlLen(v.Text)
	return v
}

// htmlLen is the length of s as html/template writes it in an element:
// each of " ' & < > is five bytes (&#34; &#39; &amp; &lt; &gt;).
func htmlLen(s string) int {
	n := len(s)
	for i := range len(s) {
		switch s[i] {
		case '"', '\'', '&', '<', '>':
			n += 4
		}
	}
	return n
}

// indentBounded indents the JSON text raw by two spaces per level (as
// json.Indent does) and stops at limit bytes of output, on a rune boundary;
// truncated says it stopped. ok is false if the text it reached nests deeper
// than maxDepth or is not JSON as far as it can tell (a closing bracket too
// many). Its cost is bounded by limit and raw's insignificant space, not by
// what raw holds. raw is a stored body, so JSON; a body that is not is
// still shown within limit, if not prettily.
func indentBounded[T text](raw T, limit, maxDepth int) (out []byte, truncated, ok bool) {
	out = make([]byte, 0, min(limit, 2*len(raw)+64))
	depth := 0
	newline := func() {
		out = append(out, '\n')
		for range depth {
			out = append(out, ' ', ' ')
		}
	}
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		if len(out) >= limit {
			return out[:runeStart(out, limit)], true, true
		}
		c := raw[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
		case '"':
			inString = true
			out = append(out, c)
		case '{', '[':
			out = append(out, c)
			if j := skipSpace(raw, i+1); j < len(raw) && (raw[j] == '}' || raw[j] == ']') {
				out = append(out, raw[j])
				i = j
				continue
			}
			if depth++; depth > maxDepth {
				return nil, false, false
			}
			newline()
		case '}', ']':
			if depth--; depth < 0 {
				return nil, false, false
			}
			newline()
			out = append(out, c)
		case ',':
			out = append(out, c)
			newline()
		case ':':
			out = append(out, ':', ' ')
		default:
			out = append(out, c)
		}
	}
	if len(out) > limit {
		return out[:runeStart(out, limit)], true, true
	}
	return out, false, true
}

func skipSpace[T text](b T, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// runeStart returns n, moved back to the start of the rune it falls in
// (at most len(b)).
func runeStart[T text](b T, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for k := 0; n > 0 && !utf8.RuneStart(b[n]) && k < utf8.UTFMax; k++ {
		n--
	}
	return n
}

// clip bounds a provider's short text on a page.
func clip(s string) string {
	if len(s) <= maxClip {
		return s
	}
	return s[:runeStart(s, maxClip)] + "…"
}

// cappedBuffer is a page being rendered: writing past maxPageBytes fails,
// which stops the template.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

var errPageTooLarge = errors.New("page larger than the console's output budget")

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errPageTooLarge
	}
	return b.Buffer.Write(p)
}

func (b *cappedBuffer) WriteString(s string) (int, error) {
	if b.Len()+len(s) > b.max {
		return 0, errPageTooLarge
	}
	return b.Buffer.WriteString(s)
}

// rawBody returns the provider's raw body an event keeps, opened with the
// console's keys if it is sealed; forgotten when its key was destroyed.
func (c *Console) rawBody(ctx context.Context, e eventstore.RecordedEvent) (raw []byte, forgotten bool, err error) {
	raw, forgotten, err = eventcodec.OpenRawBody(ctx, c.o.Keys, e.Event)
	if err != nil {
		return nil, false, fmt.Errorf("event at %d: %w", e.Position.Commit, err)
	}
	return raw, forgotten, nil
}

// forgottenBody says why a body is not shown.
const forgottenBody = "forgotten: the person this delivery was about was forgotten, and its body with them"

// receiptRawHref is where the raw body of a receipt's event downloads.
func receiptRawHref(source, id string, revision uint64) string {
	return receiptHref(source, id) + "/events/" + strconv.FormatUint(revision, 10) + "/raw"
}

// quarantineRawHref is where a quarantined delivery's raw body downloads.
func quarantineRawHref(source string, position uint64) string {
	return Prefix + "deliveries/" + url.PathEscape(source) + "/" + strconv.FormatUint(position, 10) + "/raw"
}

// receiptRaw downloads the raw body of the event at a revision of a
// receipt's stream. The operator's key must read the receipt through the
// query API first (read:all, as the receipt page needs).
func (c *Console) receiptRaw(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	rev, err := strconv.ParseUint(r.PathValue("revision"), 10, 64)
	if err != nil {
		http.Error(w, "bad revision", http.StatusBadRequest)
		return
	}
	if _, err := c.api.GetReceipt(apiContext(r), &receiptdv1.GetReceiptRequest{ReceiptId: id, Source: source}); err != nil {
		c.apiError(w, r, "receipt "+id, err)
		return
	}
	stream := aggregate.StreamID(aggregate.CategoryReceipt, source, id)
	evs, err := c.o.Log.ReadStream(r.Context(), stream, rev, 1)
	if err != nil {
		c.render(w, r, http.StatusBadGateway, "error", errorData{What: "read " + stream, Code: "log", Message: err.Error()})
		return
	}
	if len(evs) == 0 || evs[0].Revision != rev {
		c.render(w, r, http.StatusNotFound, "error", errorData{What: "event " + strconv.FormatUint(rev, 10) + " of " + stream, Code: "NotFound", Message: "no such event"})
		return
	}
	c.sendRaw(w, r, evs[0], stream+"-"+strconv.FormatUint(rev, 10)+".json")
}

// quarantineRaw downloads the raw body of the quarantined delivery at a
// commit position. The operator's key must list the source's quarantine
// through the query API first (admin, as the Deliveries page needs).
func (c *Console) quarantineRaw(w http.ResponseWriter, r *http.Request) {
	source := r.PathValue("source")
	pos, err := strconv.ParseUint(r.PathValue("position"), 10, 64)
	if err != nil || pos == 0 {
		http.Error(w, "bad position", http.StatusBadRequest)
		return
	}
	if _, err := c.audit.ListQuarantined(apiContext(r), &receiptdv1.ListQuarantinedRequest{Source: source, PageSize: 1}); err != nil {
		c.apiError(w, r, "quarantine of "+source, err)
		return
	}
	stream := aggregate.QuarantineStream(source)
	e, found, err := findAt(r.Context(), c.o.Log, stream, pos)
	if err != nil {
		c.render(w, r, http.StatusBadGateway, "error", errorData{What: "read " + stream, Code: "log", Message: err.Error()})
		return
	}
	if !found {
		c.render(w, r, http.StatusNotFound, "error", errorData{What: "quarantined delivery at " + strconv.FormatUint(pos, 10), Code: "NotFound", Message: "no quarantined delivery of " + source + " at that position"})
		return
	}
	c.sendRaw(w, r, e, stream+"-at-"+strconv.FormatUint(pos, 10)+".json")
}

// sendRaw answers an event's raw body as a download: an attachment of an
// opaque type that no browser renders or sniffs, in a sandbox.
func (c *Console) sendRaw(w http.ResponseWriter, r *http.Request, e eventstore.RecordedEvent, name string) {
	raw, forgotten, err := c.rawBody(r.Context(), e)
	if err != nil || len(raw) == 0 {
		msg := "the event keeps no raw body"
		switch {
		case err != nil:
			msg = err.Error()
		case forgotten:
			msg = forgottenBody
		}
		c.render(w, r, http.StatusNotFound, "error", errorData{What: "raw body", Code: "NotFound", Message: msg})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName(name)}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// fileName keeps letters, digits, '.', '-' and '_' of a download's name,
// at most 120 bytes of them.
func fileName(s string) string {
	b := make([]byte, 0, min(len(s), 120))
	for i := 0; i < len(s) && len(b) < 120; i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	return string(b)
}

// findAt returns the event of stream at commit position pos. A stream's
// positions grow with its revisions, so a galloping then binary search
// finds it in O(log n) reads of one event each.
func findAt(ctx context.Context, log Log, stream string, pos uint64) (eventstore.RecordedEvent, bool, error) {
	// first reads the first event at or after rev; ok is false past the
	// end.
	first := func(rev uint64) (e eventstore.RecordedEvent, ok bool, err error) {
		evs, err := log.ReadStream(ctx, stream, rev, 1)
		if err != nil || len(evs) == 0 {
			return e, false, err
		}
		return evs[0], true, nil
	}
	// atOrPast reports whether the event at rev is at or past pos (or
	// there is none).
	atOrPast := func(rev uint64) (bool, error) {
		e, ok, err := first(rev)
		return !ok || e.Position.Commit >= pos, err
	}
	lo, step := uint64(0), uint64(1) // every revision below lo is before pos
	hi := uint64(0)
	for {
		r := lo + step - 1
		past, err := atOrPast(r)
		if err != nil {
			return eventstore.RecordedEvent{}, false, err
		}
		if past {
			hi = r
			break
		}
		lo, step = r+1, min(step*2, 1<<40)
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		past, err := atOrPast(mid)
		if err != nil {
			return eventstore.RecordedEvent{}, false, err
		}
		if past {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	e, ok, err := first(lo)
	if err != nil || !ok || e.Position.Commit != pos {
		return eventstore.RecordedEvent{}, false, err
	}
	return e, true, nil
}
