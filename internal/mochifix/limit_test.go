package mochifix_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/doorbridge/doorbridge/internal/mochifix"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// limitedBroker is a mochi broker on a mochifix listener limited to
// maxPending connections that have not logged in, each given timeout.
func limitedBroker(t *testing.T, maxPending int, timeout time.Duration) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), SysTopicResendInterval: 1 << 30})
	l, err := mochifix.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Limit(maxPending, timeout)
	for _, h := range []mqtt.Hook{new(auth.AllowHook), &mochifix.SessionHook{Server: srv, Listeners: []*mochifix.Listener{l}}} {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(); l.Wait() })
	return l.Address()
}

// closedByPeer reports whether the broker closed c within d (it sends
// nothing to a client that has not sent a CONNECT).
func closedByPeer(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		t.Logf("read: %v", err) // a reset is a close too
	}
	return true
}

func dialIdle(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A socket that never logs in is closed after the connect timeout: it
// cannot hold the broker's memory (mochi allocates a client and its
// buffers on accept) for ever.
func TestListenerClosesIdleSocketsBeforeLogin(t *testing.T) {
	addr := limitedBroker(t, 0, 300*time.Millisecond)
	c := dialIdle(t, addr)
	if !closedByPeer(t, c, 10*time.Second) {
		t.Fatal("a socket that sent nothing was still open 10 s after a 300 ms connect timeout")
	}
	// A client that logs in is not cut by that deadline.
	cl := testbroker.Connect(t, "tcp://"+addr, "in")
	cl.Publish("x/y", "1", false)
}

// At most maxPending connections wait for their login: a new one closes
// the oldest, so a stream of idle sockets neither grows the broker nor
// keeps a real client out, and a logged-in client is never closed for it.
func TestListenerBoundsPendingLogins(t *testing.T) {
	const maxPending = 4
	addr := limitedBroker(t, maxPending, time.Minute)
	in := testbroker.Connect(t, "tcp://"+addr, "in")
	idle := make([]net.Conn, 0, 2*maxPending)
	for range 2 * maxPending {
		idle = append(idle, dialIdle(t, addr))
	}
	for i, c := range idle[:maxPending] {
		if !closedByPeer(t, c, 10*time.Second) {
			t.Errorf("idle socket %d, of %d, still open: want the oldest closed beyond %d pending", i, len(idle), maxPending)
		}
	}
	late := testbroker.Connect(t, "tcp://"+addr, "late")
	late.Publish("x/y", "2", false)
	in.Publish("x/y", "1", false)
	if in.Lost() != 0 {
		t.Error("a logged-in client lost its connection to the pending limit")
	}
}

// A flood of idle sockets from one host closes its own, never another
// host's connection waiting for its login: after 4 × maxPending idle
// sockets from 127.0.0.1, the one from 127.0.0.2 that was there first
// still logs in.
func TestListenerEvictsFromTheFloodingHost(t *testing.T) {
	const maxPending = 8
	addr := limitedBroker(t, maxPending, time.Minute)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	flood := make([]net.Conn, 0, 4*maxPending)
	for range 4 * maxPending {
		flood = append(flood, dialIdle(t, addr))
	}
	// The flood's oldest are closed: every one of them has been accepted.
	if !closedByPeer(t, flood[0], 10*time.Second) || !closedByPeer(t, flood[len(flood)-maxPending-1], 10*time.Second) {
		t.Fatal("the flooding host's oldest idle sockets are still open")
	}
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 5}, "other"...)
	if _, err := other.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(other, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Errorf("the other host's login after the flood: % x, %v", ack, err)
	}
}

// Closing the broker while connections keep arriving neither panics nor
// hangs: mochi's Close waits on its clients' WaitGroup right after closing
// the listeners, so a connection accepted just before must have reached
// mochi (or been dropped) by then. This is what a bridge stopping during a
// reconnect storm does; the race detector and mochi's WaitGroup panic
// ("reused before previous Wait has returned") caught it in CI.
func TestCloseWhileConnectionsArrive(t *testing.T) {
	for round := 0; round < 100; round++ {
		srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), SysTopicResendInterval: 1 << 30})
		l, err := mochifix.Listen("tcp", "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddListener(l); err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		dialers := make(chan struct{})
		var dialed atomic.Int64
		for i := 0; i < 4; i++ {
			go func() {
				defer func() { dialers <- struct{}{} }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.Dial("tcp", l.Address())
					if err != nil {
						continue
					}
					dialed.Add(1)
					_, _ = c.Write([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 0})
					c.Close()
				}
			}()
		}
		// Let connections be accepted; then close while they arrive.
		testbroker.Eventually(t, 10*time.Second, func() bool { return dialed.Load() >= 20 },
			"round %d: connections made", round)
		closed := make(chan struct{})
		go func() { _ = srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the broker did not close within 10 s while connections arrived", round)
		}
		close(stop)
		for i := 0; i < 4; i++ {
			<-dialers
		}
		l.Wait()
	}
}

// A listener that mochi never served can be closed: Close does not wait
// for an accept loop that will never run.
func TestCloseListenerNeverServed(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), SysTopicResendInterval: 1 << 30})
	l, err := mochifix.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing a broker whose listener was never served hung")
	}
}
