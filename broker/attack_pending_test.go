package broker

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// attackConnect logs in with a minimal MQTT 3.1.1 CONNECT, as a client does
// right after its TCP connect, and reports whether a CONNACK accepted it.
func attackConnect(addr, id string, rtt time.Duration) error {
	return attackConnectFrom(nil, addr, id, rtt)
}

// attackConnectFrom is attackConnect from the local address from (nil:
// the kernel's choice).
func attackConnectFrom(from net.Addr, addr, id string, rtt time.Duration) error {
	c, err := (&net.Dialer{LocalAddr: from, Timeout: 2 * time.Second}).Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	time.Sleep(rtt) // the CONNECT arrives a round trip (or a TLS handshake) after the accept
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("no CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("refused: % x", ack)
	}
	return nil
}

// ATTACK (local user, or LAN when listen/tls_listen face the LAN): the
// pending-login limit evicts the OLDEST connection that has not logged in
// yet, whoever it is. A client that only opens sockets (no password, no
// CONNECT) evicts every legitimate login that is still between accept and
// OnSessionEstablish, the bridge's own reconnect included: nobody can log in
// while the flood lasts. The flood here is bounded: 48 open sockets at most,
// 3 s. Fixed: the pending limit evicts from the host holding the most, so
// the logins (from 127.0.0.2, another host than the flood's 127.0.0.1) all
// get in.
func TestAttackPendingEvictionLocksLoginsOut(t *testing.T) {
	attackProbe(t)
	for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(fmt.Sprint("rtt=", rtt), func(t *testing.T) { attackPendingEviction(t, rtt) })
	}
}

func attackPendingEviction(t *testing.T, rtt time.Duration) {
	eb, err := StartPlain("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	addr := eb.Addr()
	if err := attackConnect(addr, "before", 0); err != nil {
		t.Fatalf("login before the flood: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var opened atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ring []net.Conn
		defer func() {
			for _, c := range ring {
				c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).Dial("tcp", addr)
			if err != nil {
				continue
			}
			opened.Add(1)
			ring = append(ring, c)
			if len(ring) > 48 {
				ring[0].Close()
				ring = ring[1:]
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the flood start (not an outcome wait)
	legit := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	failed, tries := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		tries++
		if err := attackConnectFrom(legit, addr, fmt.Sprintf("doorbridge-home-%d", tries), rtt); err != nil {
			failed++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("during the flood (%d sockets opened): %d of %d logins failed", opened.Load(), failed, tries)
	if failed > 0 {
		t.Errorf("a client without any password made %d of %d logins fail by opening sockets", failed, tries)
	}
}
