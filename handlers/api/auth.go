package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/receiptd/receiptd/internal/ratelimit"
	"github.com/receiptd/receiptd/projections"
)

// PrincipalKind is the kind of caller a Principal is.
type PrincipalKind int

const (
	// PrincipalAPIKey is a backend or an operator, with the scopes of its key.
	PrincipalAPIKey PrincipalKind = iota + 1
	// PrincipalUser is an end user, from a verified JWT: their own data only.
	PrincipalUser
	// PrincipalLoopback is any loopback client of a server with no access
	// configuration: it holds LoopbackScopes (reads), never admin.
	PrincipalLoopback
)

func (k PrincipalKind) String() string {
	switch k {
	case PrincipalAPIKey:
		return "api_key"
	case PrincipalUser:
		return "user"
	case PrincipalLoopback:
		return "loopback"
	}
	return "unknown"
}

// Principal is who is calling: what the interceptor authenticated.
type Principal struct {
	Kind PrincipalKind
	// ID names the principal, in logs too: the API key's configured name,
	// the user's id (from the configured claim), or "loopback". Never a
	// credential. A user's id is the id the data holds (it must equal the
	// user_id a request names), so it is unique only within its Issuer.
	ID string
	// Issuer is a user's token issuer (iss): users of two issuers are two
	// principals even with the same ID (their own rate-limit buckets, their
	// own sources). Empty for other kinds.
	Issuer string
	// Scopes the principal holds (API keys; loopback holds LoopbackScopes).
	Scopes []Scope
	// Sources, for a user, are the sources whose data they may read; nil
	// means any.
	Sources []string
}

func (p Principal) holdsAny(scopes []Scope) bool {
	for _, s := range scopes {
		if slices.Contains(p.Scopes, s) {
			return true
		}
	}
	return false
}

// key names the principal for rate limits: kind, issuer and id.
func (p Principal) key() string {
	if p.Kind == PrincipalUser {
		return p.Kind.String() + ":" + p.Issuer + "\x00" + p.ID
	}
	return p.Kind.String() + ":" + p.ID
}

// LoopbackScopes are the scopes a loopback client holds on a server without
// access configuration: reads only (the feed included). Admin is never
// held without a configured API key holding it, loopback or not: a reverse
// proxy or a sidecar on the same host would hand it to every remote
// client.
var LoopbackScopes = []Scope{ScopeReadAll, ScopeFeed}

// Authenticator turns the credential of a call (the part of the
// Authorization value after "Bearer ") into a principal. An error means the
// credential is not valid: the call is answered UNAUTHENTICATED with the
// error's text, so that text must not hold the credential or key material.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (Principal, error)
}

// AccessOptions configure NewAccess. The zero value is the loopback-only
// default.
type AccessOptions struct {
	// Authenticator checks credentials. Nil means no access is configured:
	// callers are not authenticated and only loopback clients may call,
	// holding LoopbackScopes: every read, no admin RPC.
	Authenticator Authenticator
	// Gateway is the listener the REST gateway's connection comes through;
	// for those calls the client's address is the last x-forwarded-for
	// entry (see GatewayListener). Nil: every call is judged by its peer.
	Gateway *GatewayListener
	// DefaultSource is the source a request with an empty source reads,
	// for the check of a user's allowed sources.
	DefaultSource string
	// Rate limits; nil means none. PerIP applies to every call, before
	// authentication; PerAPIKey and PerUser to authenticated principals.
	PerIP, PerAPIKey, PerUser *ratelimit.Keyed
	// Logger gets one line per refused call (never a credential);
	// slog.Default() if nil.
	Logger *slog.Logger
	// Rules replaces the package's rule table (tests); nil means Rules().
	Rules map[string]Rule
	// Now is the clock of the rate limits; time.Now if nil.
	Now func() time.Time
}

// Access is the gRPC interceptor pair that enforces the rule table on
// every call: Unary and Stream. Register both on the gRPC server; REST
// passes through them because the gateway calls that same server.
type Access struct {
	o     AccessOptions
	rules map[string]Rule
}

// MaxCredentialLength bounds the Authorization value, in bytes.
const MaxCredentialLength = 8 << 10

// NewAccess returns the interceptors for the given options.
func NewAccess(o AccessOptions) (*Access, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := o.Rules
	if r == nil {
		r = Rules()
	}
	for m, rule := range r {
		if err := rule.validate(); err != nil {
			return nil, fmt.Errorf("api: new access: rule for %s: %w", m, err)
		}
	}
	return &Access{o: o, rules: r}, nil
}

func (r Rule) validate() error {
	switch {
	case r.Public && (len(r.Scopes) > 0 || r.Users != NoUsers):
		return errors.New("a public rule names scopes or user access")
	case !r.Public && len(r.Scopes) == 0:
		return errors.New("no scope may call it")
	case r.Users == UserField && r.UserField == "":
		return errors.New("user access by field names no field")
	case r.Users != UserField && r.UserField != "":
		return errors.New("a user field without user access by field")
	case r.Users != UserOwner && r.Users != UserSubjects && r.OwnerField != "":
		return errors.New("an owner field without user access by owner or subjects")
	case r.Users == UserSubjects && r.OwnerField == "":
		return errors.New("user access by subjects names no field")
	case r.Users < NoUsers || r.Users > UserSubjects:
		return fmt.Errorf("unknown user access %d", r.Users)
	}
	return nil
}

// grant is what the interceptor decided for one admitted call. It travels
// in the call's context.
type grant struct {
	principal Principal
	rule      Rule
	// restricted: a user admitted by rule.Users, not by a scope; the
	// request (UserField) or the handler (UserOwner) must show the data
	// is theirs.
	restricted bool
	// ownerChecked: the handler called AuthorizeOwner.
	ownerChecked atomic.Bool
}

type grantKey struct{}

// PrincipalFromContext returns the principal the access interceptor
// admitted the call as; false for a public RPC or a server without the
// interceptor.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	g, ok := ctx.Value(grantKey{}).(*grant)
	if !ok {
		return Principal{}, false
	}
	return g.principal, true
}

// RestrictedUser returns the caller of an RPC whose rule admits users for
// their own data (UserField, UserOwner, UserSubjects) when it was admitted
// as such a user rather than by a scope: a handler that filters what it
// answers (the feed) filters to p.ID, and to p.Sources when set. False
// for any other caller, and for a call that did not pass through the
// interceptor.
func RestrictedUser(ctx context.Context) (p Principal, ok bool) {
	g, found := ctx.Value(grantKey{}).(*grant)
	if !found || !g.restricted {
		return Principal{}, false
	}
	return g.principal, true
}

// AuthorizeOwner is the ownership check of RPCs whose rule is UserOwner:
// call it with the owner (user id) of what was loaded, before answering.
// It returns nil when the caller may see it: a principal admitted by a
// scope, the owner, or a call that did not pass through the interceptor
// (a server built without access control). For another user's data it
// returns an error matching projections.ErrNotFound, which toStatus turns
// into the same NOT_FOUND a missing receipt gets.
func AuthorizeOwner(ctx context.Context, owner string) error {
	g, ok := ctx.Value(grantKey{}).(*grant)
	if !ok {
		return nil
	}
	g.ownerChecked.Store(true)
	if !g.restricted || (owner != "" && owner == g.principal.ID) {
		return nil
	}
	return fmt.Errorf("owned by another user: %w", projections.ErrNotFound)
}

// Unary is the unary server interceptor.
func (a *Access) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	g, err := a.admit(ctx, info.FullMethod, func(md metadata.MD) { _ = grpc.SetHeader(ctx, md) })
	if err != nil {
		return nil, err
	}
	if g == nil { // public
		return handler(ctx, req)
	}
	if err := a.checkRequest(ctx, info.FullMethod, g, req); err != nil {
		return nil, err
	}
	resp, err := handler(context.WithValue(ctx, grantKey{}, g), req)
	if err == nil {
		err = a.checkAnswer(ctx, info.FullMethod, g, resp)
	}
	if err != nil {
		return nil, a.ownerError(info.FullMethod, g, err)
	}
	return resp, nil
}

// Stream is the streaming server interceptor. Requests are checked as the
// handler receives them; for a UserOwner rule, nothing is sent to a user
// before the handler has called AuthorizeOwner.
func (a *Access) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	g, err := a.admit(ctx, info.FullMethod, func(md metadata.MD) { _ = ss.SetHeader(md) })
	if err != nil {
		return err
	}
	if g == nil {
		return handler(srv, ss)
	}
	gs := &guardedStream{ServerStream: ss, ctx: context.WithValue(ctx, grantKey{}, g), a: a, g: g, method: info.FullMethod}
	err = handler(srv, gs)
	if gs.refused != nil { // whatever the handler made of it
		err = gs.refused
	}
	if err != nil {
		return a.ownerError(info.FullMethod, g, err)
	}
	return nil
}

type guardedStream struct {
	grpc.ServerStream
	ctx     context.Context
	a       *Access
	g       *grant
	method  string
	refused error // the first message the stream refused to send
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.a.checkRequest(s.ctx, s.method, s.g, m)
}

func (s *guardedStream) SendMsg(m any) error {
	if s.refused != nil {
		return s.refused
	}
	if err := s.a.checkAnswer(s.ctx, s.method, s.g, m); err != nil {
		s.refused = err
		return err
	}
	return s.ServerStream.SendMsg(m)
}

// checkAnswer is the owner check of a UserOwner rule on one response
// message to a restricted user: the owner field must name the caller, or,
// with no owner field, the handler must have called AuthorizeOwner.
func (a *Access) checkAnswer(ctx context.Context, method string, g *grant, resp any) error {
	if g.restricted && g.rule.Users == UserSubjects {
		return a.checkSubjects(ctx, method, g, resp)
	}
	if !g.restricted || g.rule.Users != UserOwner {
		return nil
	}
	op := opName(method)
	if g.rule.OwnerField == "" {
		if g.ownerChecked.Load() {
			return nil
		}
		a.o.Logger.ErrorContext(ctx, "access: handler answered a user without checking ownership (AuthorizeOwner); refused", "method", method, "principal", g.principal.ID)
		return status.Error(codes.Internal, op+": internal error")
	}
	m, ok := resp.(proto.Message)
	owner, isString := "", false
	if ok {
		owner, isString = stringField(m.ProtoReflect(), g.rule.OwnerField)
	}
	if !isString {
		a.o.Logger.ErrorContext(ctx, "access: the rule's owner field is not a string field of the response; refused", "method", method, "field", g.rule.OwnerField)
		return status.Error(codes.Internal, op+": internal error")
	}
	if owner == "" || owner != g.principal.ID {
		a.refused(ctx, method, codes.NotFound, "another user's data", &g.principal, a.clientAddr(ctx))
		return status.Error(codes.NotFound, op+": not found")
	}
	return nil
}

// checkSubjects is the check of a UserSubjects rule on one message to a
// restricted user: it names the caller in the rule's repeated field, or
// has no subject at all (an empty "id").
func (a *Access) checkSubjects(ctx context.Context, method string, g *grant, resp any) error {
	m, ok := resp.(proto.Message)
	var users []string
	isList := false
	if ok {
		users, isList = stringList(m.ProtoReflect(), g.rule.OwnerField)
	}
	id, hasID := "", false
	if ok {
		id, hasID = stringField(m.ProtoReflect(), "id")
	}
	switch {
	case !isList || !hasID:
		a.o.Logger.ErrorContext(ctx, "access: the rule's subject field (repeated string) or the id field (string) is missing from the response; refused", "method", method, "field", g.rule.OwnerField)
	case id == "" && len(users) == 0:
		return nil // a message about no one
	case slices.Contains(users, g.principal.ID):
		return nil
	default:
		a.o.Logger.ErrorContext(ctx, "access: handler sent a user a message about other users; refused", "method", method, "principal", g.principal.ID)
	}
	return status.Error(codes.Internal, opName(method)+": internal error")
}

// ownerError makes every NOT_FOUND of a UserOwner rule to a restricted user
// read the same, so that "someone else's" and "missing" cannot be told
// apart. Other errors pass unchanged.
func (a *Access) ownerError(method string, g *grant, err error) error {
	if g.restricted && g.rule.Users == UserOwner && status.Code(err) == codes.NotFound {
		return status.Error(codes.NotFound, opName(method)+": not found")
	}
	return err
}

// admit authenticates and authorizes a call to method, before the handler
// runs. It returns nil, nil for a public RPC. setHeader sends response
// header metadata (Retry-After, WWW-Authenticate).
func (a *Access) admit(ctx context.Context, method string, setHeader func(metadata.MD)) (*grant, error) {
	op := opName(method)
	client := a.clientAddr(ctx)
	rule, err := a.rule(ctx, method)
	if err != nil {
		return nil, err
	}
	if a.o.PerIP != nil {
		if err := a.take(a.o.PerIP, ipKey(client), op, "this address", setHeader); err != nil {
			return nil, err
		}
	}
	if rule.Public {
		return nil, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	p, err := a.authenticate(ctx, method, client, md.Get("authorization"), setHeader)
	if err != nil {
		return nil, err
	}
	if lim := a.principalLimit(p.Kind); lim != nil {
		if err := a.take(lim, p.key(), op, "this caller", setHeader); err != nil {
			return nil, err
		}
	}
	return a.authorize(ctx, method, rule, p, client)
}

// rule returns method's rule; PERMISSION_DENIED (and an error in the log)
// for a method with none.
func (a *Access) rule(ctx context.Context, method string) (Rule, error) {
	rule, ok := a.rules[method]
	if !ok {
		a.o.Logger.ErrorContext(ctx, "access: no rule for this method; refused (add a row to handlers/api/rules.go)", "method", method)
		return Rule{}, status.Error(codes.PermissionDenied, opName(method)+": no access rule for this method")
	}
	return rule, nil
}

// authenticate returns the principal of a call from client with the
// given Authorization values: with no Authenticator, a loopback client;
// otherwise the principal of the one Bearer credential.
func (a *Access) authenticate(ctx context.Context, method string, client netip.Addr, authorization []string, setHeader func(metadata.MD)) (Principal, error) {
	op := opName(method)
	if a.o.Authenticator == nil {
		if !client.IsValid() || !client.IsLoopback() {
			a.refused(ctx, method, codes.PermissionDenied, "not a loopback client and no access configured", nil, client)
			return Principal{}, status.Error(codes.PermissionDenied, op+": queries are limited to loopback clients until access control is configured")
		}
		return Principal{Kind: PrincipalLoopback, ID: "loopback", Scopes: slices.Clone(LoopbackScopes)}, nil
	}
	cred, err := bearer(authorization)
	var p Principal
	if err == nil {
		p, err = a.o.Authenticator.Authenticate(ctx, cred)
	}
	if err != nil {
		a.refused(ctx, method, codes.Unauthenticated, err.Error(), nil, client)
		setHeader(metadata.Pairs("www-authenticate", `Bearer realm="receiptd"`))
		return Principal{}, status.Errorf(codes.Unauthenticated, "%s: %v", op, err)
	}
	return p, nil
}

// authorize decides whether p may call method under rule.
func (a *Access) authorize(ctx context.Context, method string, rule Rule, p Principal, client netip.Addr) (*grant, error) {
	op := opName(method)
	g := &grant{principal: p, rule: rule}
	switch {
	case p.holdsAny(rule.Scopes):
	case p.Kind == PrincipalUser && rule.Users != NoUsers:
		g.restricted = true
	case p.Kind == PrincipalLoopback:
		a.refused(ctx, method, codes.PermissionDenied, "an admin RPC, and no access configured", &p, client)
		return nil, status.Errorf(codes.PermissionDenied, "%s: needs an admin API key (access: api_keys, scope admin); a loopback client without one may only read", op)
	default:
		a.refused(ctx, method, codes.PermissionDenied, "lacks the scope", &p, client)
		return nil, status.Errorf(codes.PermissionDenied, "%s: not allowed for this caller", op)
	}
	return g, nil
}

// authorizeHTTP is the gateway's check of a REST request for method
// before it reads the request's body or lifts a deadline (see
// NewGateway): the same rule, principal and scope checks as the
// interceptor, which still runs on the call and stays the authority, on
// the HTTP client's address (RemoteAddr, which the gateway forwards as the
// last x-forwarded-for entry) and Authorization header. A user the rule
// admits for their own data passes: what data is theirs is known only
// from the request. Rate limits are the interceptor's, except that a
// refusal here takes the per-address token the call would have taken, so
// a flood of bad credentials is limited as before. Response headers
// (WWW-Authenticate, Retry-After) are set on w.
func (a *Access) authorizeHTTP(w http.ResponseWriter, r *http.Request, method string) error {
	ctx := r.Context()
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	setHeader := func(md metadata.MD) {
		for k, vs := range md {
			if name, ok := outgoingHeader(k); ok {
				w.Header()[name] = vs
			}
		}
	}
	rule, err := a.rule(ctx, method)
	if err == nil && !rule.Public {
		var p Principal
		if p, err = a.authenticate(ctx, method, client, r.Header.Values("Authorization"), setHeader); err == nil {
			_, err = a.authorize(ctx, method, rule, p, client)
		}
	}
	if err != nil && a.o.PerIP != nil {
		if lerr := a.take(a.o.PerIP, ipKey(client), opName(method), "this address", setHeader); lerr != nil {
			return lerr
		}
	}
	return err
}

func (a *Access) principalLimit(k PrincipalKind) *ratelimit.Keyed {
	switch k {
	case PrincipalAPIKey:
		return a.o.PerAPIKey
	case PrincipalUser:
		return a.o.PerUser
	}
	return nil
}

// take takes a token from lim for key, or returns RESOURCE_EXHAUSTED with
// a retry-after header (seconds) and a RetryInfo detail.
func (a *Access) take(lim *ratelimit.Keyed, key, op, who string, setHeader func(metadata.MD)) error {
	ok, wait := lim.Take(key, a.o.Now())
	if ok {
		return nil
	}
	secs := ratelimit.RetryAfterSeconds(wait)
	setHeader(metadata.Pairs("retry-after", strconv.FormatInt(secs, 10)))
	st := status.Newf(codes.ResourceExhausted, "%s: too many requests from %s; retry after %ds", op, who, secs)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		st = d
	}
	return st.Err()
}

// checkRequest applies a restricted user's checks to one request message:
// the allowed sources and, for UserField rules, the user field.
func (a *Access) checkRequest(ctx context.Context, method string, g *grant, req any) error {
	if !g.restricted {
		return nil
	}
	op := opName(method)
	m, ok := req.(proto.Message)
	if !ok {
		a.o.Logger.ErrorContext(ctx, "access: request is not a proto message; refused", "method", method)
		return status.Error(codes.PermissionDenied, op+": not allowed for this caller")
	}
	msg := m.ProtoReflect()
	if len(g.principal.Sources) > 0 {
		if src, ok := stringField(msg, "source"); ok {
			if src == "" {
				src = a.o.DefaultSource
			}
			if !slices.Contains(g.principal.Sources, src) {
				a.refused(ctx, method, codes.PermissionDenied, "source not open to this user", &g.principal, a.clientAddr(ctx))
				return status.Errorf(codes.PermissionDenied, "%s: source %q is not open to this user", op, src)
			}
		}
	}
	if g.rule.Users != UserField {
		return nil
	}
	user, ok := stringField(msg, g.rule.UserField)
	if !ok {
		a.o.Logger.ErrorContext(ctx, "access: the rule's user field is not a string field of the request; refused", "method", method, "field", g.rule.UserField)
		return status.Error(codes.PermissionDenied, op+": not allowed for this caller")
	}
	if user != g.principal.ID {
		a.refused(ctx, method, codes.PermissionDenied, "another user's data", &g.principal, a.clientAddr(ctx))
		return status.Errorf(codes.PermissionDenied, "%s: a user may read only their own data", op)
	}
	return nil
}

func stringField(m protoreflect.Message, name string) (string, bool) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated {
		return "", false
	}
	return m.Get(fd).String(), true
}

// stringList returns the values of a repeated string field.
func stringList(m protoreflect.Message, name string) ([]string, bool) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() != protoreflect.Repeated {
		return nil, false
	}
	l := m.Get(fd).List()
	out := make([]string, l.Len())
	for i := range out {
		out[i] = l.Get(i).String()
	}
	return out, true
}

func (a *Access) refused(ctx context.Context, method string, code codes.Code, reason string, p *Principal, client netip.Addr) {
	args := []any{"method", method, "code", code.String(), "reason", reason}
	if p != nil {
		args = append(args, "principal", p.ID)
		if p.Issuer != "" {
			args = append(args, "issuer", p.Issuer)
		}
	}
	if client.IsValid() {
		args = append(args, "client", client.String())
	}
	a.o.Logger.InfoContext(ctx, "access refused", args...)
}

// errNoCredentials and errBadAuthorization are the answers to calls whose
// Authorization metadata carries no usable credential.
var (
	errNoCredentials    = errors.New("missing credentials: send Authorization: Bearer <API key or token>")
	errBadAuthorization = errors.New("malformed Authorization: want exactly one \"Bearer <credential>\"")
)

// bearer returns the credential of a call's one Authorization value.
func bearer(vals []string) (string, error) {
	switch {
	case len(vals) == 0:
		return "", errNoCredentials
	case len(vals) > 1, len(vals[0]) > MaxCredentialLength:
		return "", errBadAuthorization
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return "", errBadAuthorization
	}
	return cred, nil
}

// clientAddr is the address a call is judged by: the TCP peer's, or for a
// call through the REST gateway the HTTP client's (the last x-forwarded-for
// entry, which the gateway appends). The zero Addr if unknown.
func (a *Access) clientAddr(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	if a.o.Gateway.isGateway(p.Addr) {
		md, _ := metadata.FromIncomingContext(ctx)
		xff := md.Get("x-forwarded-for")
		if len(xff) == 0 {
			return netip.Addr{}
		}
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return netip.Addr{}
		}
		return ip.Unmap()
	}
	if ta, ok := p.Addr.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// ipKey is the rate-limit key of a client address: the address for IPv4,
// its /64 for IPv6 (one host usually holds a whole /64).
func ipKey(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is6():
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// opName is the RPC name in a full method name, for error messages.
func opName(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}
