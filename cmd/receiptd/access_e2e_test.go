package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/internal/authtest"
)

// The API keys of the access tests. The server gets only their hashes.
const (
	e2eReaderKey   = "rk_e2e_reader_7c0f3a9d51b2"
	e2eAdminKey    = "rk_e2e_admin_2b8e6d4f0a13"
	e2eOperatorKey = "rk_e2e_operator_95e1c7a3b6d8"
	e2eIssuer      = "https://id.bank.example"
	e2eMobile      = "https://mobile-id.bank.example"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// accessFixture is a server with an access section: three API keys (a
// literal hash, env: and file:), an RS256 issuer with a JWKS file and an
// ES256 issuer with a PEM key and claim uid, and receipts of alice and bob.
type accessFixture struct {
	s                *server
	idp, mobile, bad *authtest.Key
	pos              uint64 // the position of the last delivery
}

func newAccessFixture(t *testing.T, rateLimits string) *accessFixture {
	t.Helper()
	f := &accessFixture{idp: authtest.RSA(t, "bank-1"), mobile: authtest.EC(t, "mobile-1"), bad: authtest.RSA(t, "bank-1")}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jwks := write("jwks.json", authtest.JWKS(t, []*authtest.Key{f.idp}))
	pemFile := write("mobile.pem", f.mobile.PublicPEM(t))
	opsHash := write("ops.sha256", []byte(sha256Hex(e2eOperatorKey)+"\n"))
	config := reewildConfig() + fmt.Sprintf(`access:
  api_keys:
    - {name: ledger-backend, sha256: %q, scopes: [read:all]}
    - {name: ops-console, sha256: "env:E2E_ADMIN_KEY_SHA256", scopes: [admin]}
    - {name: oncall, sha256: "file:%s", scopes: [read:all, admin]}
  users:
    - {issuer: %q, audience: receiptd, jwks: "file:%s", sources: [reewild]}
    - {issuer: %q, audience: receiptd, public_keys: ["file:%s"], user_claim: uid, sources: [reewild]}
%s`, sha256Hex(e2eReaderKey), opsHash, e2eIssuer, jwks, e2eMobile, pemFile, rateLimits)
	f.s = startServer(t, t.TempDir(), config, "E2E_REEWILD_SECRET="+e2eSecret, "E2E_ADMIN_KEY_SHA256="+sha256Hex(e2eAdminKey))
	for _, d := range []struct{ user, receipt string }{{"alice", "r-alice"}, {"bob", "r-bob"}} {
		body := []byte(fmt.Sprintf(`{"eventType":"receipt.extracted","data":{"userID":%q,"receiptID":%q,"subTotal":6.33}}`, d.user, d.receipt))
		code, pos := f.s.post(t, "reewild", body, sign(body), "application/json")
		if code != http.StatusOK {
			t.Fatalf("delivery for %s: %d", d.user, code)
		}
		f.pos = max(f.pos, pos)
	}
	return f
}

// token returns "Bearer <JWT>" from the RS256 issuer for user, with claims
// changed by mods.
func (f *accessFixture) token(t *testing.T, key *authtest.Key, user string, mods ...func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": e2eIssuer, "aud": "receiptd", "sub": user, "exp": time.Now().Add(10 * time.Minute).Unix()}
	for _, m := range mods {
		m(c)
	}
	return "Bearer " + key.Sign(t, c)
}

// restGet sends GET path with an Authorization header (if any).
func restGet(t *testing.T, s *server, path, authorization string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

var codeHTTP = map[codes.Code]int{
	codes.OK: 200, codes.Unauthenticated: 401, codes.PermissionDenied: 403, codes.NotFound: 404, codes.ResourceExhausted: 429,
}

type e2eCall struct {
	name string
	grpc func(ctx context.Context, conn *grpc.ClientConn) error
	rest string
}

func e2eCalls() []e2eCall {
	getReceipt := func(id string) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewReceiptServiceClient(conn).GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: id})
			return err
		}
	}
	getBalance := func(user string) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewReceiptServiceClient(conn).GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: user})
			return err
		}
	}
	listReceipts := func(user string) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewReceiptServiceClient(conn).ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: user})
			return err
		}
	}
	return []e2eCall{
		{"GetReceipt alice's", getReceipt("r-alice"), "/v1/receipts/r-alice"},
		{"GetReceipt bob's", getReceipt("r-bob"), "/v1/receipts/r-bob"},
		{"GetReceipt missing", getReceipt("r-missing"), "/v1/receipts/r-missing"},
		{"GetBalance alice", getBalance("alice"), "/v1/users/alice/balance"},
		{"GetBalance bob", getBalance("bob"), "/v1/users/bob/balance"},
		{"ListUserReceipts alice", listReceipts("alice"), "/v1/users/alice/receipts"},
		{"ListUserReceipts bob", listReceipts("bob"), "/v1/users/bob/receipts"},
		{"ListEntities", func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewReceiptServiceClient(conn).ListEntities(ctx, &receiptdv1.ListEntitiesRequest{Kind: "offer"})
			return err
		}, "/v1/entities/offer"},
		{"GetStats", func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewStatsServiceClient(conn).GetStats(ctx, &receiptdv1.GetStatsRequest{})
			return err
		}, "/v1/stats"},
		{"Audit", func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := receiptdv1.NewAuditServiceClient(conn).Audit(ctx, &receiptdv1.AuditRequest{})
			return err
		}, "/v1/audit"},
	}
}

// TestAccess is the principal × RPC × code table of the real server,
// through gRPC and through REST.
func TestAccess(t *testing.T) {
	// Limits off: each user makes more calls here than the default burst.
	f := newAccessFixture(t, "  rate_limits: {per_user: {per_second: 0}, per_api_key: {per_second: 0}}\n")
	s := f.s
	// Read our writes once, as a backend.
	if code, _, body := restGet(t, s, fmt.Sprintf("/v1/users/bob/balance?min_position=%d", f.pos), "Bearer "+e2eReaderKey); code != 200 {
		t.Fatalf("backend read after the deliveries: %d %s", code, body)
	}

	alice := f.token(t, f.idp, "alice")
	bob := "Bearer " + f.mobile.Sign(t, jwt.MapClaims{"iss": e2eMobile, "aud": []string{"receiptd"}, "uid": "bob", "exp": time.Now().Add(10 * time.Minute).Unix()})
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	const (
		OK = codes.OK
		U  = codes.Unauthenticated
		P  = codes.PermissionDenied
		NF = codes.NotFound
	)
	//           receipt: alice's bob's missing  balance: alice bob  receipts: alice bob  entities stats audit
	all := func(c codes.Code) []codes.Code { return []codes.Code{c, c, c, c, c, c, c, c, c, c} }
	backend := []codes.Code{OK, OK, NF, OK, OK, OK, OK, OK, OK, P}
	principals := []struct {
		name, auth string
		want       []codes.Code
	}{
		{"no credentials", "", all(U)},
		{"unknown API key", "Bearer rk_e2e_unknown_0000", all(U)},
		{"API key hash sent as the key", "Bearer " + sha256Hex(e2eReaderKey), all(U)},
		{"expired token", f.token(t, f.idp, "alice", set("exp", time.Now().Add(-10*time.Minute).Unix())), all(U)},
		{"not-yet-valid token", f.token(t, f.idp, "alice", set("nbf", time.Now().Add(10*time.Minute).Unix())), all(U)},
		{"wrong-audience token", f.token(t, f.idp, "alice", set("aud", "another-api")), all(U)},
		{"wrong-issuer token", f.token(t, f.idp, "alice", set("iss", "https://evil.example")), all(U)},
		{"wrong-key token", f.token(t, f.bad, "alice"), all(U)},
		{"alg none token", "Bearer " + authtest.None(t, jwt.MapClaims{"iss": e2eIssuer, "aud": "receiptd", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}), all(U)},
		{"HS256 keyed with the public key", "Bearer " + authtest.HS256WithPublicKey(t, f.idp, jwt.MapClaims{"iss": e2eIssuer, "aud": "receiptd", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}), all(U)},
		{"read:all key (literal hash)", "Bearer " + e2eReaderKey, backend},
		{"admin key (env: hash)", "Bearer " + e2eAdminKey, []codes.Code{P, P, P, P, P, P, P, P, P, OK}},
		{"read:all+admin key (file: hash)", "Bearer " + e2eOperatorKey, []codes.Code{OK, OK, NF, OK, OK, OK, OK, OK, OK, OK}},
		{"user alice (RS256, JWKS)", alice, []codes.Code{OK, NF, NF, OK, P, OK, P, P, P, P}},
		{"user bob (ES256, PEM, uid)", bob, []codes.Code{NF, OK, NF, P, OK, P, OK, P, P, P}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dialGRPC(t, s)
	calls := e2eCalls()
	for _, p := range principals {
		if len(p.want) != len(calls) {
			t.Fatalf("%s: %d expectations for %d calls", p.name, len(p.want), len(calls))
		}
		for i, call := range calls {
			want := p.want[i]
			t.Run(p.name+"/"+call.name, func(t *testing.T) {
				cctx := ctx
				if p.auth != "" {
					cctx = metadata.AppendToOutgoingContext(ctx, "authorization", p.auth)
				}
				if got := status.Code(call.grpc(cctx, conn)); got != want {
					t.Errorf("gRPC: %v, want %v", got, want)
				}
				code, hdr, body := restGet(t, s, call.rest, p.auth)
				if code != codeHTTP[want] {
					t.Errorf("REST GET %s: %d, want %d: %s", call.rest, code, codeHTTP[want], body)
				}
				if want == U && hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
	}

	// Someone else's receipt answers exactly as a missing one.
	_, _, other := restGet(t, s, "/v1/receipts/r-bob", alice)
	_, _, missing := restGet(t, s, "/v1/receipts/r-missing", alice)
	if other != missing {
		t.Errorf("someone else's receipt: %s; missing: %s", other, missing)
	}
	// Health needs no credentials; reflection needs a key.
	if _, err := healthpb.NewHealthClient(dialGRPC(t, s)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without credentials: %v", err)
	}

	logs := s.logs.String()
	for _, secret := range []string{e2eReaderKey, e2eAdminKey, e2eOperatorKey, sha256Hex(e2eReaderKey), sha256Hex(e2eAdminKey), sha256Hex(e2eOperatorKey),
		strings.TrimPrefix(alice, "Bearer "), alice[strings.LastIndexByte(alice, '.')+1:], bob[strings.LastIndexByte(bob, '.')+1:], "rk_e2e_unknown_0000"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server logged a credential or key hash (%.12s…)", secret)
		}
	}
	for _, want := range []string{"access control on", "ledger-backend", `"principal":"alice"`, `"principal":"ops-console"`, "access refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %s", want)
		}
	}
	if strings.Contains(logs, "loopback clients only") {
		t.Error("the loopback-only warning with access configured")
	}
}

// TestAccessRateLimits: a user over their limit gets 429 + Retry-After by
// REST and RESOURCE_EXHAUSTED by gRPC; a source over its ingest limit gets
// 429 + Retry-After.
func TestAccessRateLimits(t *testing.T) {
	f := newAccessFixture(t, `  rate_limits:
    per_user: {per_second: 0.01, burst: 3}
    ingest_per_source: {per_second: 0.01, burst: 3}
`)
	s := f.s
	// The fixture's two deliveries took two ingest tokens: one is left.
	body := []byte(`{"eventType":"receipt.extracted","data":{"userID":"carol","receiptID":"r-carol","subTotal":1}}`)
	if code, _ := s.post(t, "reewild", body, sign(body), "application/json"); code != http.StatusOK {
		t.Fatalf("third delivery: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url("/webhooks/reewild"), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Reewild-Signature", sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "100" {
		t.Errorf("fourth delivery: %d, Retry-After %q; want 429, 100", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// An unknown source is still 404, not limited.
	if code, _ := s.post(t, "nosuch", body, sign(body), "application/json"); code != http.StatusNotFound {
		t.Errorf("unknown source: %d", code)
	}

	alice := f.token(t, f.idp, "alice")
	for i := range 3 {
		if code, _, b := restGet(t, s, "/v1/users/alice/balance", alice); code != 200 {
			t.Fatalf("alice call %d: %d %s", i, code, b)
		}
	}
	code, hdr, _ := restGet(t, s, "/v1/users/alice/balance", alice)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("alice's fourth REST call: %d, Retry-After %q", code, hdr.Get("Retry-After"))
	}
	var md metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", alice)
	_, err = receiptdv1.NewReceiptServiceClient(dialGRPC(t, s)).GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "alice"}, grpc.Header(&md))
	if status.Code(err) != codes.ResourceExhausted || len(md.Get("retry-after")) != 1 {
		t.Errorf("alice over gRPC: %v, header %v", err, md)
	}
	// Another user, and backends, have their own buckets.
	if code, _, _ := restGet(t, s, "/v1/users/bob/balance", f.token(t, f.idp, "bob")); code != 200 {
		t.Errorf("bob: %d", code)
	}
	if code, _, _ := restGet(t, s, "/v1/users/alice/balance", "Bearer "+e2eReaderKey); code != 200 {
		t.Errorf("backend: %d", code)
	}
}

// TestAccessLoopbackDefault: with no access section the server warns at
// start and answers loopback clients without credentials; webhooks work as
// before. (A non-loopback client is refused: handlers/api tests that, as
// tests here can reach the server over loopback only.)
func TestAccessLoopbackDefault(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	if !strings.Contains(s.logs.String(), "loopback clients only") {
		t.Errorf("no warning about the loopback-only default:\n%s", s.logs)
	}
	body := []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"r1","subTotal":1}}`)
	code, pos := s.post(t, "reewild", body, sign(body), "application/json")
	if code != http.StatusOK {
		t.Fatalf("delivery: %d", code)
	}
	if code, _, b := restGet(t, s, fmt.Sprintf("/v1/receipts/r1?min_position=%d", pos), ""); code != 200 {
		t.Errorf("REST from loopback: %d %s", code, b)
	}
	if code, _, _ := restGet(t, s, "/v1/receipts/r1", "Bearer whatever"); code != 200 {
		t.Errorf("REST from loopback with a stray Authorization: %d", code)
	}
	if _, err := receiptdv1.NewReceiptServiceClient(dialGRPC(t, s)).GetReceipt(context.Background(), &receiptdv1.GetReceiptRequest{ReceiptId: "r1"}); err != nil {
		t.Errorf("gRPC from loopback: %v", err)
	}
	// Issue 12, item 9: admin RPCs are not open to loopback; they need an
	// admin API key, which a server without an access section has none of.
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/rebuild", `{}`}, {"POST", "/v1/quarantine/reprocess", `{"source":"reewild"}`},
		{"GET", "/v1/audit", ""}, {"GET", "/v1/quarantine", ""},
	} {
		req, _ := http.NewRequest(r.method, s.url(r.path), strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "admin API key") {
			t.Errorf("%s %s from loopback, no access section: %d %s, want 403 naming the admin API key", r.method, r.path, resp.StatusCode, b)
		}
	}
	audit := receiptdv1.NewAuditServiceClient(dialGRPC(t, s))
	if _, err := audit.Rebuild(context.Background(), &receiptdv1.RebuildRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC Rebuild from loopback: %v, want PermissionDenied", err)
	}
	if _, err := audit.Audit(context.Background(), &receiptdv1.AuditRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC Audit from loopback: %v, want PermissionDenied", err)
	}
	if _, stderr, code := runCLI(t, "rebuild", "--server", s.grpcAddr); code == 0 || !strings.Contains(stderr, "admin API key") {
		t.Errorf("receiptd rebuild --server without a key: exit %d\n%s", code, stderr)
	}
}

// TestExampleAccessConfig: examples/access.yaml starts as documented, and
// its API keys work.
func TestExampleAccessConfig(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	opsHash := filepath.Join(t.TempDir(), "ops-console.sha256")
	if err := os.WriteFile(opsHash, []byte(sha256Hex(e2eOperatorKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := mustRead(t, "../../examples/access.yaml")
	config = strings.NewReplacer(
		"file:examples/", "file:"+root+"/examples/",
		"file:/tmp/ops-console.sha256", "file:"+opsHash,
		"env:REEWILD_SECRET", "env:E2E_REEWILD_SECRET",
	).Replace(config)
	s := startServer(t, t.TempDir(), config, "E2E_REEWILD_SECRET="+e2eSecret, "LEDGER_KEY_SHA256="+sha256Hex(e2eReaderKey))
	for auth, want := range map[string]int{"": 401, "Bearer " + e2eReaderKey: 404, "Bearer " + e2eOperatorKey: 404, "Bearer " + e2eAdminKey: 401} {
		if code, _, b := restGet(t, s, "/v1/receipts/none", auth); code != want {
			t.Errorf("%.20q: %d, want %d: %s", auth, code, want, b)
		}
	}
	if !strings.Contains(s.logs.String(), `"token_issuers":["https://id.bank.example","https://mobile-id.bank.example"]`) {
		t.Errorf("the example's issuers are not configured:\n%s", s.logs)
	}
}

// TestReceiptctlToken: receiptctl sends --token as the Bearer credential;
// without it a server with access control refuses it.
func TestReceiptctlToken(t *testing.T) {
	f := newAccessFixture(t, "")
	args := []string{"--addr", f.s.grpcAddr, "balance", "get", "alice", "--min-position", strconv.FormatUint(f.pos, 10)}
	out, err := exec.Command(receiptctlBin, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Unauthenticated") {
		t.Errorf("receiptctl without --token: %v\n%s", err, out)
	}
	cmd := exec.Command(receiptctlBin, append([]string{"--token", "env:E2E_TOKEN"}, args...)...)
	cmd.Env = append(os.Environ(), "E2E_TOKEN="+e2eReaderKey)
	out, err = cmd.CombinedOutput()
	var b restBalance
	if err != nil || json.Unmarshal(out, &b) != nil || b.UserID != "alice" || b.ReceiptsInProgress != 1 {
		t.Errorf("receiptctl --token (read:all key): %v\n%s", err, out)
	}
}
