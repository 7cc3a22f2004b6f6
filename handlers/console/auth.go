package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/ratelimit"
)

// CookieName is the session cookie.
const CookieName = "receiptd_console"

// maxSessions bounds the sessions kept; the oldest is dropped past it.
const maxSessions = 1024

// session is one signed-in operator, held server-side only.
type session struct {
	id        string
	key       string // the API key, sent to the query API as the operator
	principal string // the key's configured name
	csrf      string
	expires   time.Time
	flash     []reprocessResult // results of the last re-process, shown once
}

type sessions struct {
	mac []byte
	ttl time.Duration
	mu  sync.Mutex
	all map[string]*session
}

func newSessions(mac []byte, ttl time.Duration) *sessions {
	return &sessions{mac: mac, ttl: ttl, all: map[string]*session{}}
}

func randomID() string {
	b := make([]byte, 24)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) sign(id string, exp int64) string {
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(id + "|" + strconv.FormatInt(exp, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// create starts a session and returns it with its cookie value.
func (s *sessions) create(key, principal string, now time.Time) (*session, string) {
	ss := &session{id: randomID(), key: key, principal: principal, csrf: randomID(), expires: now.Add(s.ttl)}
	exp := ss.expires.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.all {
		if now.After(o.expires) {
			delete(s.all, id)
		}
	}
	if len(s.all) >= maxSessions {
		var oldest *session
		for _, o := range s.all {
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		delete(s.all, oldest.id)
	}
	s.all[ss.id] = ss
	return ss, ss.id + "." + strconv.FormatInt(exp, 10) + "." + s.sign(ss.id, exp)
}

// lookup returns the session of a cookie value: a known id, an intact MAC,
// not expired.
func (s *sessions) lookup(value string, now time.Time) *session {
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return nil
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= exp {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(parts[2]), []byte(s.sign(parts[0], exp))) != 1 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.all[parts[0]]
	if ss == nil || now.After(ss.expires) || ss.expires.Unix() != exp {
		return nil
	}
	return ss
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.all, id)
	s.mu.Unlock()
}

func (s *sessions) setFlash(ss *session, f []reprocessResult) {
	s.mu.Lock()
	ss.flash = f
	s.mu.Unlock()
}

func (s *sessions) takeFlash(ss *session) []reprocessResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := ss.flash
	ss.flash = nil
	return f
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	ss, _ := ctx.Value(sessionKey{}).(*session)
	return ss
}

func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	return c.sessions.lookup(ck.Value, time.Now())
}

// page wraps a page: without a session, a redirect to the login page.
func (c *Console) page(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := c.current(r)
		if ss == nil {
			http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss)))
	}
}

// stream wraps the event stream: 401 without a session.
func (c *Console) stream(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := c.current(r)
		if ss == nil {
			http.Error(w, "sign in to the console first", http.StatusUnauthorized)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss)))
	}
}

// action wraps a POST: 401 without a session, 403 without the session's
// CSRF token or from another origin.
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := c.current(r)
		if ss == nil {
			http.Error(w, "sign in to the console first", http.StatusUnauthorized)
			return
		}
		if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ss.csrf)) != 1 {
			http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss)))
	}
}

// sameOrigin: a browser's Origin header, when sent, names this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginData struct {
	Next, Error string
}

// maxNextLen bounds a post-login redirect target.
const maxNextLen = 2048

// safeNext keeps a post-login redirect inside the console. next must be a
// path on this origin ("/…", not "//host"), with no backslash, space or
// control character anywhere, nor one encoded in a path segment. Its dot
// segments are removed the way a browser resolves them ("." and "..", also
// percent-encoded as "%2e") BEFORE the prefix is checked, so
// "/ui/../../evil" is "/evil" and refused; the redirect is rebuilt from the
// resolved path and the query alone (no fragment). Anything else is the
// console's home page.
func safeNext(next string) string {
	if len(next) > maxNextLen || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return Prefix
	}
	for i := range len(next) {
		if c := next[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return Prefix
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return Prefix
	}
	// Resolve dot segments on the escaped path, segment by segment: an
	// encoded slash stays data inside its segment, as it does for the
	// browser and the mux; an encoded dot is a dot.
	segs := strings.Split(u.EscapedPath(), "/")[1:]
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		dec, err := url.PathUnescape(s)
		if err != nil || strings.ContainsFunc(dec, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }) {
			return Prefix
		}
		// An encoded slash is data to the browser, but a server that
		// decodes before cleaning would see dot segments: none at all.
		if strings.Contains(dec, "/") && slices.ContainsFunc(strings.Split(dec, "/"), func(p string) bool { return p == "." || p == ".." }) {
			return Prefix
		}
		last := i == len(segs)-1
		switch dec {
		case ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
		}
	}
	p := "/" + strings.Join(out, "/")
	if trailing && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	if !strings.HasPrefix(p, Prefix) || strings.Contains(p, "//") {
		return Prefix
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// Sign-in attempts per client address: a burst of 10, then one every 6 s.
const (
	loginPerSecond = 1.0 / 6
	loginBurst     = 10
)

// login checks the key with the query API's Authenticator: 401 for an
// unknown key, 403 for a key without the admin scope, 429 past the
// per-address limit on attempts.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		http.Error(w, "cross-origin sign-in refused", http.StatusForbidden)
		return
	}
	if ok, wait := c.logins.Take(clientIP(r), time.Now()); !ok {
		w.Header().Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(wait), 10))
		c.render(w, r, http.StatusTooManyRequests, "login", loginData{Next: next, Error: "Too many sign-in attempts from this address; wait a minute."})
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" || len(key) > api.MaxCredentialLength || strings.Count(key, ".") == 2 {
		c.render(w, r, http.StatusUnauthorized, "login", loginData{Next: next, Error: "Not a valid API key."})
		return
	}
	p, err := c.o.Auth.Authenticate(r.Context(), key)
	if err != nil || p.Kind != api.PrincipalAPIKey {
		c.o.Logger.InfoContext(r.Context(), "console: sign-in refused", "reason", "unknown API key", "client", clientIP(r))
		c.render(w, r, http.StatusUnauthorized, "login", loginData{Next: next, Error: "Not a valid API key."})
		return
	}
	if !slices.Contains(p.Scopes, api.ScopeAdmin) {
		c.o.Logger.InfoContext(r.Context(), "console: sign-in refused", "reason", "no admin scope", "principal", p.ID, "client", clientIP(r))
		c.render(w, r, http.StatusForbidden, "login", loginData{Next: next, Error: "The key " + p.ID + " does not hold the admin scope: the console is for operators."})
		return
	}
	_, value := c.sessions.create(key, p.ID, time.Now())
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: strings.TrimSuffix(Prefix, "/"),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.o.SecureCookie,
		MaxAge: int(c.o.SessionTTL.Seconds()),
	})
	c.o.Logger.InfoContext(r.Context(), "console: signed in", "principal", p.ID, "client", clientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.end(sessionFrom(r.Context()).id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: strings.TrimSuffix(Prefix, "/"), MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.o.SecureCookie})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// clientIP is the browser's address, as the query API judges it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// apiContext authenticates a query API call as the signed-in operator,
// from the browser's address (the x-forwarded-for entry the gateway's
// listener trusts).
func apiContext(r *http.Request) context.Context {
	ss := sessionFrom(r.Context())
	return metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+ss.key, "x-forwarded-for", clientIP(r))
}
