package api

import (
	"context"
	"net"
	"sync"
)

// GatewayListener is an in-memory net.Listener that carries the REST
// gateway's connection to the gRPC server. Serve the gRPC server on it as
// well as on its TCP listener, and dial the gateway's *grpc.ClientConn with
// DialContext:
//
//	gwl := api.NewGatewayListener()
//	go grpcServer.Serve(gwl)
//	conn, err := grpc.NewClient("passthrough:///receiptd-gateway",
//		grpc.WithContextDialer(gwl.DialContext),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	gw, err := api.NewGateway(ctx, conn)
//
// Why: a REST request reaches the gRPC server as a call from the gateway,
// so its gRPC peer is the gateway, not the HTTP client; the client's address
// is the last x-forwarded-for entry the gateway appends. That metadata is
// trusted only on connections accepted by this listener, which no one
// outside the process can open. A gRPC client connecting over TCP, from
// loopback or not, is judged by its TCP peer address whatever
// x-forwarded-for it sends.
type GatewayListener struct {
	addr  *gatewayAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// gatewayAddr is the address of both ends of the gateway's connections; the
// pointer identifies the listener (the struct is not zero-size, so two
// listeners' pointers never compare equal).
type gatewayAddr struct{ _ byte }

func (*gatewayAddr) Network() string { return "receiptd-gateway" }
func (*gatewayAddr) String() string  { return "receiptd-gateway" }

// NewGatewayListener returns an open GatewayListener.
func NewGatewayListener() *GatewayListener {
	return &GatewayListener{addr: &gatewayAddr{}, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *GatewayListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. Connections already accepted stay open.
func (l *GatewayListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *GatewayListener) Addr() net.Addr { return l.addr }

// DialContext opens a connection to the listener (the address is ignored),
// for grpc.WithContextDialer.
func (l *GatewayListener) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- &gatewayConn{Conn: server, addr: l.addr}:
		return &gatewayConn{Conn: client, addr: l.addr}, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

// isGateway reports whether a gRPC peer address is one of this listener's
// connections.
func (l *GatewayListener) isGateway(a net.Addr) bool {
	ga, ok := a.(*gatewayAddr)
	return ok && l != nil && ga == l.addr
}

type gatewayConn struct {
	net.Conn
	addr net.Addr
}

func (c *gatewayConn) LocalAddr() net.Addr  { return c.addr }
func (c *gatewayConn) RemoteAddr() net.Addr { return c.addr }
