package mochifix_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/mochifix"
)

// TestPipeBuffersBothWays: both ends of an in-process connection may write
// a burst at once, before either reads, as over TCP. (The broker writes
// retained messages and acks to the bridge while the bridge writes its
// state; with an unbuffered net.Pipe both writes waited for a read that
// never came, and the bridge lost its embedded broker at every write
// deadline, under load over and over.) The deadline only bounds a
// deadlock: a buffered write returns at once.
func TestPipeBuffersBothWays(t *testing.T) {
	l := mochifix.NewPipeListener()
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if s, err := l.Accept(); err == nil {
			accepted <- s
		}
	}()
	c, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()

	const burst = 16 << 10
	errs := make(chan error, 2)
	for _, conn := range []net.Conn{c, s} {
		go func() {
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := conn.Write(bytes.Repeat([]byte{'x'}, burst))
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a %d-byte write while the other end was writing too: %v (the other end must not have to read first)", burst, err)
		}
	}
	for _, conn := range []net.Conn{c, s} {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, make([]byte, burst)); err != nil {
			t.Fatalf("reading the other end's burst: %v", err)
		}
	}
}
