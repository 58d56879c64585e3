package mochifix

import (
	"context"
	"net"
	"sync"
)

// PipeListener is a net.Listener whose connections are in-process pipes
// (an anonymous socket pair, buffered both ways: pipe_unix.go) opened by
// its Dial: a way into the broker that no socket, and
// so no other process, can reach. The bridge connects to its embedded
// broker through one, so that a flood of sockets on the public listeners
// never stands in the way of its own login.
type PipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*PipeListener)(nil)

// NewPipeListener returns an open PipeListener.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Dial opens a connection to the listener; Accept returns its other end.
func (l *PipeListener) Dial(ctx context.Context) (net.Conn, error) {
	c, s, err := connPair()
	if err != nil {
		return nil, err
	}
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
	case <-ctx.Done():
	}
	_ = c.Close()
	_ = s.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, net.ErrClosed
}

// Accept waits for the next Dial.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the pipe's address ("pipe").
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
