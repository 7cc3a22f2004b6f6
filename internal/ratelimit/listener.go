package ratelimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Listener bounds how many connections a net.Listener has open at once.
// Past the bound, Accept closes each new connection as soon as it is
// accepted (with a TCP reset where it can) and counts it, rather than
// leaving it in the kernel's backlog: a client sees a refusal at once, and
// a flood of idle connections cannot take every file descriptor or the
// memory of the servers' per-connection state. A connection counts until
// it is closed. It is safe for concurrent use.
type Listener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

// NewListener wraps l to keep at most max connections open.
func NewListener(l net.Listener, max int) (*Listener, error) {
	if max < 1 {
		return nil, errors.New("ratelimit: a listener needs a bound of at least one connection")
	}
	return &Listener{Listener: l, max: int64(max)}, nil
}

// Accept implements net.Listener: the next connection within the bound.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &boundedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset: no FIN_WAIT, nothing kept for this client
		}
		_ = c.Close()
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused is the number of connections closed at once for the bound.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Max is the bound.
func (l *Listener) Max() int { return int(l.max) }

type boundedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *boundedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
