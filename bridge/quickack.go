package bridge

import (
	"bufio"
	"net"
)

// ackConn acknowledges at once what it reads from the broker, and reads
// through a buffer.
//
// The bridge answers a command with several QoS 1 publishes; the broker
// answers each with a 4-byte PUBACK and the bridge sends nothing after the
// last one, so Linux delays its ACK (up to 40 ms, the delayed-ACK timer).
// A broker with Nagle's algorithm on (mosquitto's default: set_tcp_nodelay
// is off) holds every small segment while one is unacknowledged: the next
// command waited in its send buffer for that delayed ACK, ~23 ms a command
// at 20 ms apart. TCP_QUICKACK turns delayed ACKs off, but only until the
// kernel sees the connection as interactive again (it does as soon as the
// bridge sends soon after receiving): so it is set again after every read.
//
// The buffer turns paho's three to five reads of every packet (type,
// length, body) into one read(2) for all the packets of a segment.
type ackConn struct {
	net.Conn
	r *bufio.Reader
}

// newAckConn wraps a TCP connection; other connections get the buffer only.
func newAckConn(c net.Conn) *ackConn {
	a := &ackConn{Conn: c}
	src := readFunc(c.Read)
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			src = func(p []byte) (int, error) {
				n, err := c.Read(p)
				if n > 0 {
					quickAck(raw)
				}
				return n, err
			}
		}
	}
	a.r = bufio.NewReaderSize(src, 4096)
	return a
}

func (c *ackConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }
