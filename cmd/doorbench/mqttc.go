package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// rawClient is a minimal MQTT 3.1.1 client on one TCP connection: CONNECT,
// SUBSCRIBE (QoS 0), PUBLISH (QoS 0 or 1) and nothing else. The measuring
// side uses it instead of paho so that its own overhead (paho hands every
// message through channels and goroutines before a callback sees it) stays
// out of the figures: a publish is one write(2), and a message is timed as
// soon as its bytes have been read.
type rawClient struct {
	conn   net.Conn
	onMsg  func(m msg)                 // called on the reader goroutine for every PUBLISH
	tapped atomic.Pointer[func(m msg)] // likewise, set after the dial (see tap)
	lastAt atomic.Int64                // UnixNano of the last PUBLISH received
	closed chan struct{}
	err    error // why the reader stopped; read after closed

	wmu    sync.Mutex
	nextID uint16

	mu       sync.Mutex
	waiters  []*msgWaiter
	subacks  map[uint16]chan struct{}
	closeErr sync.Once
}

// msg is one received PUBLISH.
type msg struct {
	Topic    string
	Payload  []byte
	Retained bool
	At       time.Time // when its last byte had been read
}

// msgWaiter waits for the first message that matches.
type msgWaiter struct {
	match func(m msg) bool
	ch    chan msg
}

// dialMQTT connects with a clean session and no keepalive (the broker never
// drops an idle measuring client). onMsg may be nil.
func dialMQTT(addr, clientID string, onMsg func(msg)) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn, onMsg: onMsg, closed: make(chan struct{}), subacks: map[uint16]chan struct{}{}}
	var p []byte
	p = appendString(p, "MQTT")
	p = append(p, 4, 0x02, 0, 0) // level 4, clean session, keepalive 0 (off)
	p = appendString(p, clientID)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(packet(0x10, p)); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(quickAckReader(conn), 64<<10)
	typ, body, err := readPacket(br)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mqtt: CONNACK: %w", err)
	}
	if typ>>4 != 2 || len(body) != 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("mqtt: connection refused (packet %#x %v)", typ, body)
	}
	conn.SetDeadline(time.Time{})
	go c.reader(br)
	return c, nil
}

// dialMQTTUntil retries dialMQTT until it succeeds or deadline passes (a
// broker that is still starting).
func dialMQTTUntil(addr, clientID string, onMsg func(msg), deadline time.Time) (*rawClient, error) {
	for {
		c, err := dialMQTT(addr, clientID, onMsg)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(2 * time.Millisecond) // retry a connection to a broker that is starting
	}
}

func (c *rawClient) reader(br *bufio.Reader) {
	defer close(c.closed)
	for {
		typ, body, err := readPacket(br)
		if err != nil {
			c.err = err
			return
		}
		switch typ >> 4 {
		case 3: // PUBLISH
			at := time.Now()
			if len(body) < 2 {
				c.err = errors.New("mqtt: short PUBLISH")
				return
			}
			n := int(body[0])<<8 | int(body[1])
			if len(body) < 2+n {
				c.err = errors.New("mqtt: bad PUBLISH topic")
				return
			}
			m := msg{Topic: string(body[2 : 2+n]), Retained: typ&1 != 0, At: at}
			rest := body[2+n:]
			if qos := (typ >> 1) & 3; qos > 0 {
				if len(rest) < 2 {
					c.err = errors.New("mqtt: PUBLISH without packet id")
					return
				}
				c.write(packet(0x40, rest[:2])) // PUBACK
				rest = rest[2:]
			}
			m.Payload = rest
			c.lastAt.Store(at.UnixNano())
			if c.onMsg != nil {
				c.onMsg(m)
			}
			if f := c.tapped.Load(); f != nil {
				(*f)(m)
			}
			c.mu.Lock()
			kept := c.waiters[:0]
			for _, w := range c.waiters {
				if w.match(m) {
					w.ch <- m
				} else {
					kept = append(kept, w)
				}
			}
			clear(c.waiters[len(kept):])
			c.waiters = kept
			c.mu.Unlock()
		case 9: // SUBACK
			if len(body) >= 2 {
				id := uint16(body[0])<<8 | uint16(body[1])
				c.mu.Lock()
				if ch, ok := c.subacks[id]; ok {
					close(ch)
					delete(c.subacks, id)
				}
				c.mu.Unlock()
			}
		}
	}
}

func (c *rawClient) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(p)
	return err
}

func (c *rawClient) packetID() uint16 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// subscribe subscribes to filters at QoS 0 and waits for the SUBACK.
func (c *rawClient) subscribe(filters ...string) error {
	id := c.packetID()
	p := []byte{byte(id >> 8), byte(id)}
	for _, f := range filters {
		p = appendString(p, f)
		p = append(p, 0)
	}
	ack := make(chan struct{})
	c.mu.Lock()
	c.subacks[id] = ack
	c.mu.Unlock()
	if err := c.write(packet(0x82, p)); err != nil {
		return err
	}
	select {
	case <-ack:
		return nil
	case <-c.closed:
		return fmt.Errorf("mqtt: connection closed before SUBACK: %v", c.err)
	case <-time.After(5 * time.Second):
		return errors.New("mqtt: no SUBACK within 5s")
	}
}

// publish sends one PUBLISH (QoS 0 or 1; a PUBACK is not awaited).
func (c *rawClient) publish(topic string, payload []byte, qos byte, retain bool) error {
	flags := byte(0x30) | qos<<1
	if retain {
		flags |= 1
	}
	p := appendString(make([]byte, 0, len(topic)+len(payload)+8), topic)
	if qos > 0 {
		id := c.packetID()
		p = append(p, byte(id>>8), byte(id))
	}
	p = append(p, payload...)
	return c.write(packet(flags, p))
}

// tap calls f on the reader goroutine for every message from now on (nil
// stops it).
func (c *rawClient) tap(f func(m msg)) {
	if f == nil {
		c.tapped.Store(nil)
		return
	}
	c.tapped.Store(&f)
}

// expect registers a waiter for the first message matching match. Register
// before the action that causes the message.
func (c *rawClient) expect(match func(m msg) bool) *msgWaiter {
	w := &msgWaiter{match: match, ch: make(chan msg, 1)}
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	return w
}

// cancel forgets w.
func (c *rawClient) cancel(w *msgWaiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// wait returns the message w matched, or an error after timeout.
func (c *rawClient) wait(w *msgWaiter, timeout time.Duration) (msg, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-w.ch:
		return m, nil
	case <-c.closed:
		c.cancel(w)
		return msg{}, fmt.Errorf("mqtt: connection closed: %v", c.err)
	case <-t.C:
		c.cancel(w)
		return msg{}, fmt.Errorf("no matching message within %v", timeout)
	}
}

// close sends DISCONNECT and closes the connection.
func (c *rawClient) close() {
	c.closeErr.Do(func() {
		c.write([]byte{0xE0, 0})
		c.conn.Close()
		<-c.closed
	})
}

// waitQuiet waits until no message has arrived for quiet (the bridge has
// finished publishing after a change), at most timeout.
func (c *rawClient) waitQuiet(quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		since := time.Since(time.Unix(0, c.lastAt.Load()))
		if since >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("messages still arriving after %v", timeout)
		}
		time.Sleep(quiet - since) // nothing to wait on: quiet is the absence of messages
	}
}

func topicIs(topic, payload string) func(msg) bool {
	return func(m msg) bool { return m.Topic == topic && string(m.Payload) == payload }
}

// quickAckReader reads conn and acknowledges what it read at once
// (TCP_QUICKACK, set again after every read: Linux turns delayed ACKs back
// on whenever the connection looks interactive). A stock mosquitto has
// Nagle on: with the measuring client's ACKs delayed, a message to it waits
// for the ACK of the one before, and the figures would time the measuring
// client's own socket (docs/perf/2026-12-06-nagle.md).
func quickAckReader(conn net.Conn) io.Reader {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return conn
	}
	return readFunc(func(p []byte) (int, error) {
		n, err := conn.Read(p)
		if n > 0 {
			raw.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
			})
		}
		return n, err
	})
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// ---- wire format ----

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func packet(header byte, body []byte) []byte {
	p := make([]byte, 0, len(body)+5)
	p = append(p, header)
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		p = append(p, d)
		if n == 0 {
			break
		}
	}
	return append(p, body...)
}

func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("mqtt: bad remaining length")
		}
		mul *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}
