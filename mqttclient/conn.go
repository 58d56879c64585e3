package mqttclient

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Conn is one connection the dialer opened. It reports what goes wrong
// between the dial and the broker's CONNACK: a refused login, or a TLS
// alert (with TLS 1.3 the broker judges the client certificate only after
// the handshake, so its verdict arrives on the first read). Once the
// CONNACK is in, it is a plain connection.
//
// It also reports its own loss (OnClose): paho closes the
// connection it loses before it starts to reconnect, so the report is of
// exactly this connection, even when paho's own connection-lost callback
// runs after the next one is up.
type Conn struct {
	net.Conn
	rd     *bufio.Reader // nil: read the connection directly
	filter *packetFilter // once the broker accepted us: oversized messages skipped (bigfilter.go)
	fail   func(error)

	onClose  func(err error)
	accepted atomic.Bool // the broker accepted the connection (CONNACK 0)
	closed   atomic.Bool
	lastErr  atomic.Pointer[error] // the last read or write error
	once     sync.Once

	settled atomic.Bool // the CONNACK is in, or the attempt failed: nothing more to watch

	mu   sync.Mutex
	head []byte // the first bytes read, up to a CONNACK's 4
	done bool
}

// readBuffer is the read buffer under paho, which reads every packet's
// header a byte at a time: buffered, a flood of small messages costs one
// system call per buffer, not three per message.
const readBuffer = 32 << 10

func (c *Conn) Read(p []byte) (int, error) {
	if c.filter != nil && c.settled.Load() && c.accepted.Load() {
		n, err := c.filter.read(p)
		if err != nil {
			c.lastErr.Store(&err)
		}
		return n, err
	}
	var n int
	var err error
	if c.rd != nil {
		n, err = c.rd.Read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	if err != nil {
		c.lastErr.Store(&err)
	}
	if c.settled.Load() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return n, err
	}
	defer func() { c.settled.Store(c.done) }()
	c.head = append(c.head, p[:min(n, 4-len(c.head))]...)
	switch {
	case len(c.head) == 4:
		c.done = true
		if c.head[0]>>4 == packets.Connack && c.head[3] != packets.Accepted {
			c.fail(connackError(c.head[3]))
		} else {
			c.accepted.Store(true)
			c.fail(nil)
		}
	case err != nil:
		c.done = true
		c.fail(err)
	}
	return n, err
}

func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.lastErr.Store(&err)
	}
	if err != nil && !c.settled.Load() {
		c.mu.Lock()
		report := !c.done
		c.done = true
		c.mu.Unlock()
		if report {
			c.fail(err)
		}
	}
	return n, err
}

// Close closes the connection and reports, once, that it is gone.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.closed.Store(true)
		if c.onClose != nil {
			why := errors.New("connection closed")
			if e := c.lastErr.Load(); e != nil {
				why = *e
			}
			c.onClose(why)
		}
	})
	return err
}

// OnClose has f called, once, with the reason when the connection is
// closed. It is for Settings.Track: set before anyone else can close c.
func (c *Conn) OnClose(f func(err error)) { c.onClose = f }

// Live reports whether the broker accepted this connection and it is still open.
func (c *Conn) Live() bool { return c.accepted.Load() && !c.closed.Load() }

// connackError is the broker's refusal code rc as an error.
func connackError(rc byte) error {
	if err, ok := packets.ConnErrors[rc]; ok {
		return &refusedError{rc: rc, err: err}
	}
	return &refusedError{rc: rc, err: fmt.Errorf("CONNACK return code %d", rc)}
}

type refusedError struct {
	rc  byte
	err error
}

func (e *refusedError) Error() string { return "broker refused the connection: " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

var _ net.Conn = (*Conn)(nil)
