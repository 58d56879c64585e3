package httpapi

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/prometheus/client_golang/prometheus"
)

const wait = 5 * time.Second // deadline for an expected outcome

// fakeBridge is a bridge that is healthy and ready, with no doors: what
// the server does with connections does not depend on what it serves.
type fakeBridge struct{ reg *prometheus.Registry }

func (fakeBridge) Healthy() bool                    { return true }
func (fakeBridge) Ready() bool                      { return true }
func (fakeBridge) State() *bridge.Snapshot          { return nil }
func (fakeBridge) DoorViews() []bridge.DoorView     { return []bridge.DoorView{} }
func (f fakeBridge) Registry() *prometheus.Registry { return f.reg }

// serveAPI serves Handler of a fake bridge until the test ends.
func serveAPI(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := Handler(fakeBridge{reg: prometheus.NewRegistry()})
	addr, err := Serve(ctx, "127.0.0.1:0", h, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// The HTTP API holds at most MaxConns connections: idle keep-alive
// connections (held for ever on 43e9a8a, which had no idle timeout nor any
// cap) cannot exhaust the bridge's file descriptors, nor hold every slot:
// a connection beyond the cap closes the longest idle one.
func TestHTTPBoundsConnections(t *testing.T) {
	addr := serveAPI(t)
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
	held := make([]net.Conn, MaxConns)
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
		t.Fatalf("connection %d not served while %d idle ones were open: %v", MaxConns+1, MaxConns, err)
	}
	closed := 0
	for _, c := range held {
		if get(c, wait) != nil {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d of the %d idle connections were closed for connection %d, want 1", closed, MaxConns, MaxConns+1)
	}
}

// serveLimited serves /readyz through limitListener with per-address cap
// perIP (loopback included), and request header timeouts long enough
// that only the listener can free a stalled connection's slot.
func serveLimited(t *testing.T, perIP int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := limitListener(ln, MaxConns)
	lim.perIP, lim.exempt = perIP, nil
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }),
		ConnState:         lim.connState,
		ReadHeaderTimeout: time.Minute,
	}
	go srv.Serve(lim)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func readyz(addr string, within time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(within))
	if _, err := c.Write([]byte("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// M-C: connections that never finish their request header cannot hold
// every slot: once full, a newcomer closes one that has been silent for
// newGrace, and /readyz is served.
func TestHTTPStalledHeadersDoNotStarveReadyz(t *testing.T) {
	addr := serveLimited(t, 2*MaxConns) // no per-address cap here
	for range MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /readyz HTTP/1.1\r\n")) // and never the rest
	}
	if err := readyz(addr, 3*wait); err != nil {
		t.Fatalf("/readyz with %d stalled connections open: %v", MaxConns, err)
	}
}

// M-C: one address holds at most its share of the connections; the one
// beyond is closed at once, not queued.
func TestHTTPConnectionsPerAddress(t *testing.T) {
	const perIP = 3
	addr := serveLimited(t, perIP)
	for range perIP {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection %d from one address was kept open (read: %v), want it closed at once", perIP+1, err)
	}
}
