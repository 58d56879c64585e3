package bridge

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// The HTTP API holds at most httpMaxConns connections: idle keep-alive
// connections (held for ever on 43e9a8a, which had no idle timeout nor any
// cap) cannot exhaust the bridge's file descriptors, nor hold every slot:
// a connection beyond the cap closes the longest idle one.
func TestHTTPBoundsConnections(t *testing.T) {
	l := loopBridge(t, &fakeClock{t: time.Unix(1e9, 0)}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := l.b.ServeAPI(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	get := func(c net.Conn, within time.Duration) error {
		_ = c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	held := make([]net.Conn, httpMaxConns)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := get(c, wait); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held[i] = c // idle, kept alive
	}
	// A new connection is served: it closes the longest idle one (which
	// one that is depends on when the server saw each go idle), and that
	// one only.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := get(extra, wait); err != nil {
		t.Fatalf("connection %d not served while %d idle ones were open: %v", httpMaxConns+1, httpMaxConns, err)
	}
	closed := 0
	for _, c := range held {
		if get(c, wait) != nil {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d of the %d idle connections were closed for connection %d, want 1", closed, httpMaxConns, httpMaxConns+1)
	}
}
