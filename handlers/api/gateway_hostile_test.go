package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/api"
)

// rawPost writes a request (request line and header lines, no body) on a
// new connection to addr, then the body from body in 32 KiB pieces (one
// byte every interval if interval > 0) while it reads the answer. It
// returns the status code (0 if none came within wait, or the connection
// was closed without one), how many body bytes were written before the
// server answered or closed, and how long that took.
func rawPost(t *testing.T, addr, head string, body io.Reader, interval, wait time.Duration) (code int, written int64, took time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		if interval > 0 {
			buf = buf[:1]
		}
		for {
			m, rerr := body.Read(buf)
			if m > 0 {
				w, werr := c.Write(buf[:m])
				n.Add(int64(w))
				if werr != nil {
					return
				}
			}
			if rerr != nil {
				return
			}
			if interval > 0 {
				time.Sleep(interval) // the client's own pace, not a wait for the server
			}
		}
	}()
	_ = c.SetReadDeadline(start.Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	took = time.Since(start)
	if err == nil {
		code = resp.StatusCode
	}
	written = n.Load()
	c.Close()
	<-done
	return code, written, took
}

// endless is an unterminated JSON string: `{"projection":"aaaa…` of n
// bytes, which a JSON decoder must read to the end to refuse.
func endless(n int64) io.Reader {
	return io.MultiReader(strings.NewReader(`{"projection":"`), io.LimitReader(repeatA{}, n))
}

type repeatA struct{}

func (repeatA) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// TestGatewayHostileBodies (issue 12, item 1): the REST routes that take a
// body (POST /v1/rebuild, POST /v1/quarantine/reprocess) were decoded
// without a size limit before the access interceptor ran, and /v1/rebuild
// had its read deadline lifted before anyone was authenticated: 96 MiB of
// one unterminated string without credentials grew the server by hundreds
// of MiB, and a trickle stayed open without end. Now credentials are
// checked before a byte of a body is read, a body is bounded
// (api.DefaultMaxBodyBytes, 413 beyond), and deadlines are lifted only
// for a checked caller whose body has been read.
func TestGatewayHostileBodies(t *testing.T) {
	env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{})
	// The server's read timeout is short so that the trickles end fast.
	srv := httptest.NewUnstartedServer(env.handler)
	srv.Config.ReadTimeout = time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	const big = 32 << 20
	post := func(path, auth string, headers ...string) string {
		h := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		if auth != "" {
			h += "Authorization: " + auth + "\r\n"
		}
		return h + strings.Join(headers, "")
	}
	chunked := "Transfer-Encoding: chunked\r\n"
	length := func(n int64) string { return fmt.Sprintf("Content-Length: %d\r\n", n) }
	// chunk frames r as one chunk of n bytes (never terminated).
	chunk := func(n int64, r io.Reader) io.Reader {
		return io.MultiReader(strings.NewReader(fmt.Sprintf("%x\r\n", n)), r)
	}
	for _, tc := range []struct {
		name     string
		head     string
		body     io.Reader
		interval time.Duration
		code     int
		// maxWritten bounds what the client could write before the answer:
		// the server read none of it beyond the kernel's socket buffers.
		maxWritten int64
		maxTook    time.Duration
	}{
		{"no credentials, 32 MiB unterminated string, chunked, to /v1/rebuild",
			post("/v1/rebuild", "", chunked), chunk(big, endless(big)), 0, http.StatusUnauthorized, 16 << 20, 3 * time.Second},
		{"no credentials, 32 MiB of a declared 100 MiB to /v1/quarantine/reprocess",
			post("/v1/quarantine/reprocess", "", length(100<<20)), endless(big), 0, http.StatusUnauthorized, 16 << 20, 3 * time.Second},
		{"a bad API key, 32 MiB to /v1/rebuild",
			post("/v1/rebuild", "Bearer rk_not_a_key", length(big+15)), endless(big), 0, http.StatusUnauthorized, 16 << 20, 3 * time.Second},
		{"a read:all key (no admin), 32 MiB to /v1/rebuild",
			post("/v1/rebuild", "Bearer "+readerKey, length(big+15)), endless(big), 0, http.StatusForbidden, 16 << 20, 3 * time.Second},
		{"an admin key, 1 MiB body to /v1/rebuild",
			post("/v1/rebuild", "Bearer "+adminKey, length(1<<20+15)), endless(1 << 20), 0, http.StatusRequestEntityTooLarge, 1<<20 + 15, 3 * time.Second},
		{"an admin key, 1 MiB chunked to /v1/quarantine/reprocess",
			post("/v1/quarantine/reprocess", "Bearer "+adminKey, chunked), chunk(1<<20+15, endless(1<<20)), 0, http.StatusRequestEntityTooLarge, 1<<20 + 32, 3 * time.Second},
		{"an admin key, a good body (reference)",
			post("/v1/rebuild", "Bearer "+adminKey, length(2)), strings.NewReader("{}"), 0, http.StatusOK, 2, 3 * time.Second},
		{"no credentials, a body trickling a byte every 100 ms to /v1/rebuild",
			post("/v1/rebuild", "", length(1000)), endless(1000), 100 * time.Millisecond, http.StatusUnauthorized, 10, time.Second},
		{"no credentials, a body trickling into GET /v1/audit (a long route)",
			strings.Replace(post("/v1/audit", "", chunked), "POST", "GET", 1), chunk(1000, endless(1000)), 100 * time.Millisecond, http.StatusUnauthorized, 10, time.Second},
		// A caller who may: the body is read within the server's read
		// timeout (1 s here) before the deadline is lifted, so a trickle
		// is cut there.
		{"an admin key, a body trickling a byte every 100 ms to /v1/rebuild",
			post("/v1/rebuild", "Bearer "+adminKey, length(1000)), endless(1000), 100 * time.Millisecond, http.StatusRequestTimeout, 100, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, written, took := rawPost(t, addr, tc.head, tc.body, tc.interval, 5*time.Second)
			t.Logf("answered %d after %v; %d body bytes written by then", code, took.Round(time.Millisecond), written)
			if code != tc.code {
				t.Errorf("status %d, want %d", code, tc.code)
			}
			if written > tc.maxWritten {
				t.Errorf("the client wrote %d body bytes before the answer, want at most %d: the server read the body", written, tc.maxWritten)
			}
			if took > tc.maxTook {
				t.Errorf("answered after %v, want within %v", took, tc.maxTook)
			}
		})
	}
}
