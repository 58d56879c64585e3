package mqttclient

import (
	"context"
	"net"
	"syscall"
)

// dialTCP dials the broker over TCP; the connection acknowledges at once
// what it reads (ackConn).
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return conn, nil
	}
	return &ackConn{TCPConn: tc, raw: raw}, nil
}

// ackConn acknowledges at once what it reads from the broker.
//
// The bridge answers a command with several QoS 1 publishes; the broker
// answers each with a 4-byte PUBACK and the bridge sends nothing after the
// last one, so Linux delays its ACK (up to 40 ms, the delayed-ACK timer).
// A broker with Nagle's algorithm on (mosquitto's default: set_tcp_nodelay
// is off) holds every small segment while one is unacknowledged: the next
// command waited in its send buffer for that delayed ACK, ~23 ms a command
// at 20 ms apart (docs/perf/2026-12-06-nagle.md). TCP_QUICKACK turns
// delayed ACKs off, but only until the kernel sees the connection as
// interactive again (it does as soon as the bridge sends soon after
// receiving): so it is set again after every read.
type ackConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *ackConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		quickAck(c.raw)
	}
	return n, err
}
