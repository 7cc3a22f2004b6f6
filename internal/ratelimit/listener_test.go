package ratelimit_test

import (
	"net"
	"testing"
	"time"

	"github.com/receiptd/receiptd/internal/ratelimit"
)

// TestListenerBound: past the bound a new connection is closed at once;
// closing one frees its place.
func TestListenerBound(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ratelimit.NewListener(inner, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed reports whether the server closed c within d.
	closed := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errorsAs(err, &ne) && ne.Timeout())
	}
	var server []net.Conn
	for range 3 {
		dial()
		server = append(server, <-accepted)
	}
	// The reset may reach the client before its connect returns.
	if over, err := net.Dial("tcp", inner.Addr().String()); err == nil {
		defer over.Close()
		if !closed(over, 2*time.Second) {
			t.Fatal("a fourth connection was not closed")
		}
	}
	for deadline := time.Now().Add(2 * time.Second); l.Refused() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // poll: the refusal is counted by the accepting goroutine
	}
	if l.Open() != 3 || l.Refused() != 1 {
		t.Errorf("open %d refused %d, want 3 and 1", l.Open(), l.Refused())
	}
	server[0].Close()
	server[0].Close() // closing twice frees one place only
	c := dial()
	s := <-accepted
	if closed(c, 100*time.Millisecond) || l.Open() != 3 {
		t.Errorf("after one closed: open %d, new connection closed", l.Open())
	}
	s.Close()
	if _, err := ratelimit.NewListener(inner, 0); err == nil {
		t.Error("a bound of 0 was accepted")
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}
