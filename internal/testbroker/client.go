package testbroker

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/internal/pahofix"
)

// Timeouts used by Client.
const (
	// ConnectTimeout bounds Connect: the TCP and MQTT connection and the subscription to "#".
	ConnectTimeout = 10 * time.Second
	// PublishTimeout bounds how long Publish waits for the broker's PUBACK.
	PublishTimeout = 10 * time.Second
)

// SyncTopicPrefix is the topic prefix of the markers that Client.Sync publishes. Messages under
// it are never recorded by any Client.
const SyncTopicPrefix = "testbroker/sync/"

// Message is one message a Client received.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool      // the broker sent it as a retained message (on subscription)
	At       time.Time // when the Client received it
}

// String formats m for failure messages.
func (m Message) String() string {
	r := ""
	if m.Retained {
		r = " (retained)"
	}
	return fmt.Sprintf("%s %q%s at %s", m.Topic, m.Payload, r, m.At.Format("15:04:05.000"))
}

// Client is a paho MQTT client for tests. It subscribes to "#" (QoS 1) and records every message
// it receives, in order of arrival, except Sync markers. It reconnects on its own after losing
// its connection (retrying every 250 ms at most) and subscribes again; messages published while
// it was disconnected are not recorded. Its methods are safe for concurrent use, but those that
// fail the test must be called from the test's goroutine.
type Client struct {
	t  testing.TB
	id string
	pc paho.Client

	lost    atomic.Int64  // connection-lost events
	syncSeq atomic.Uint64 // Sync marker counter

	mu     sync.Mutex
	msgs   []Message
	notify chan struct{} // closed and replaced on every recorded message or Sync marker
	synced uint64        // highest Sync marker number come back
}

// Connect connects a paho client with client id clientID (clean session) to url (for example
// Broker.URL or Proxy.URL), subscribes to "#" and waits for the subscription, failing t on error
// or after ConnectTimeout. The client is disconnected in t.Cleanup.
func Connect(t testing.TB, url, clientID string) *Client {
	t.Helper()
	return ConnectWith(t, url, clientID, ClientOptions{})
}

// ConnectWith is Connect with credentials and TLS settings (see ClientOptions).
func ConnectWith(t testing.TB, url, clientID string, o ClientOptions) *Client {
	t.Helper()
	c := &Client{t: t, id: clientID, notify: make(chan struct{})}
	subscribed := make(chan error, 1)
	var first atomic.Bool
	first.Store(true)

	opts := paho.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetConnectTimeout(ConnectTimeout).
		// paho v1.5.1 hands a PUBLISH or SUBSCRIBE to its writer after
		// checking that it is connected; a connection lost in between
		// blocks the call until paho has reconnected, or for the write
		// timeout (30 s unless set) when the broker stays away.
		SetWriteTimeout(PublishTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(250 * time.Millisecond).
		SetStore(pahofix.Store()).
		SetConnectionLostHandler(func(paho.Client, error) { c.lost.Add(1) }).
		SetOnConnectHandler(func(pc paho.Client) {
			// Runs in its own goroutine on every (re)connection: with a clean session the
			// subscription must be made each time.
			tok := pc.Subscribe("#", 1, c.onMessage)
			var err error
			if !tok.WaitTimeout(ConnectTimeout) {
				err = fmt.Errorf("no SUBACK within %v", ConnectTimeout)
			} else {
				err = tok.Error()
			}
			if first.CompareAndSwap(true, false) {
				subscribed <- err
			}
		})
	o.apply(opts)
	c.pc = paho.NewClient(opts)

	tok := c.pc.Connect()
	if !tok.WaitTimeout(ConnectTimeout) {
		c.pc.Disconnect(0)
		t.Fatalf("testbroker: client %q: no CONNACK from %s within %v", clientID, url, ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("testbroker: client %q: connect to %s: %v", clientID, url, err)
	}
	t.Cleanup(c.Close)
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("testbroker: client %q: subscribe to #: %v", clientID, err)
		}
	case <-time.After(ConnectTimeout + time.Second):
		t.Fatalf("testbroker: client %q: subscription to # did not complete", clientID)
	}
	return c
}

// onMessage records m; paho calls it in order of arrival (OrderMatters).
func (c *Client) onMessage(_ paho.Client, pm paho.Message) {
	m := Message{Topic: pm.Topic(), Payload: bytes.Clone(pm.Payload()), Retained: pm.Retained(), At: time.Now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rest, ok := strings.CutPrefix(m.Topic, SyncTopicPrefix); ok {
		own, ok := strings.CutPrefix(rest, c.id+"/")
		if !ok {
			return // another client's marker
		}
		if n, err := strconv.ParseUint(own, 10, 64); err == nil && n > c.synced {
			c.synced = n
		}
	} else {
		c.msgs = append(c.msgs, m)
	}
	close(c.notify)
	c.notify = make(chan struct{})
}

// Paho is the underlying paho client, for tests that need it directly.
func (c *Client) Paho() paho.Client { return c.pc }

// Lost is the number of times the client has lost its connection so far.
func (c *Client) Lost() int { return int(c.lost.Load()) }

// Close disconnects the client (waiting at most 250 ms for in-flight work). It is called in
// t.Cleanup; calling it earlier, or twice, is fine.
func (c *Client) Close() {
	c.pc.Disconnect(250)
}

// Publish publishes payload to topic at QoS 1 and waits for the broker's acknowledgement, failing
// the test on error or after PublishTimeout. The broker may still be handing the message to
// subscribers when it acknowledges (mochi does), so a client that subscribes right after Publish
// returns may get a retained message twice, once retained and once live; call Sync after Publish
// to be sure the broker is done with it.
func (c *Client) Publish(topic string, payload string, retained bool) {
	c.t.Helper()
	tok := c.pc.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(PublishTimeout) {
		c.t.Fatalf("testbroker: client %q: publish %q to %s: no PUBACK within %v", c.id, payload, topic, PublishTimeout)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("testbroker: client %q: publish %q to %s: %v", c.id, payload, topic, err)
	}
}

// Mark is the current length of the record, to pass to WaitForAfter as a "from" point: only
// messages received after this call match.
func (c *Client) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// WaitFor waits up to timeout for a message on topic (exact topic name, no wildcards) satisfying
// pred (nil matches any), anywhere in the record: it returns the earliest such message already
// received, or else the first one to arrive. It fails the test on timeout, listing the last
// messages received on topic. It is WaitForAfter(0, ...).
func (c *Client) WaitFor(topic string, timeout time.Duration, pred func(Message) bool) Message {
	c.t.Helper()
	return c.WaitForAfter(0, topic, timeout, pred)
}

// WaitForAfter is WaitFor restricted to messages at index mark or later in the record, that is
// received after the Mark call that returned mark.
func (c *Client) WaitForAfter(mark int, topic string, timeout time.Duration, pred func(Message) bool) Message {
	c.t.Helper()
	m, ok := c.waitFor(mark, topic, time.Now().Add(timeout), pred)
	if !ok {
		c.t.Fatalf("testbroker: client %q: no matching message on %s within %v (after record index %d); %s",
			c.id, topic, timeout, mark, c.describe(topic))
	}
	return m
}

// WaitPayload waits up to timeout until the latest message on topic has payload: it returns at
// once if the latest message already recorded on topic equals payload, and otherwise waits for
// a future message equal to payload (older messages in the record do not count). It fails the
// test on timeout.
func (c *Client) WaitPayload(topic, payload string, timeout time.Duration) Message {
	c.t.Helper()
	c.mu.Lock()
	mark := len(c.msgs)
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].Topic == topic {
			if string(c.msgs[i].Payload) == payload {
				m := c.msgs[i]
				c.mu.Unlock()
				return m
			}
			break
		}
	}
	c.mu.Unlock()
	m, ok := c.waitFor(mark, topic, time.Now().Add(timeout), func(m Message) bool { return string(m.Payload) == payload })
	if !ok {
		c.t.Fatalf("testbroker: client %q: no message %q on %s within %v; %s", c.id, payload, topic, timeout, c.describe(topic))
	}
	return m
}

// Since returns a copy of the messages recorded from mark (see Mark) on, on every topic, oldest
// first.
func (c *Client) Since(mark int) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mark > len(c.msgs) {
		return nil
	}
	return append([]Message(nil), c.msgs[mark:]...)
}

// Messages returns a copy of the messages received on topic (exact topic name), oldest first.
func (c *Client) Messages(topic string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Message
	for _, m := range c.msgs {
		if m.Topic == topic {
			m.Payload = bytes.Clone(m.Payload)
			out = append(out, m)
		}
	}
	return out
}

// Sync makes sure the client is subscribed and has recorded everything the broker sent it so far,
// including retained messages delivered on (re)subscription: it publishes a marker to
// SyncTopicPrefix+clientID+"/n" and waits for it to come back, publishing a new marker every
// 250 ms while none arrives (the client may still be reconnecting). A broker delivers messages to
// one client in order, so once a marker is back, anything sent before it has been recorded; and a
// broker handles one client's publications in order, so this client's earlier publications have
// been handed to every subscriber. It
// fails the test if no marker comes back within timeout. Sync markers are not recorded.
func (c *Client) Sync(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	first := c.syncSeq.Load() + 1 // a marker from this call or later proves the sync
	for {
		seq := c.syncSeq.Add(1)
		c.pc.Publish(SyncTopicPrefix+c.id+"/"+strconv.FormatUint(seq, 10), 1, false, "sync") // its coming back is the ack
		attempt := time.Now().Add(250 * time.Millisecond)
		if attempt.After(deadline) {
			attempt = deadline
		}
		if c.waitSynced(first, attempt) {
			return
		}
		if !time.Now().Before(deadline) {
			c.t.Fatalf("testbroker: client %q: Sync: no marker came back within %v (connected: %v, lost %d times)",
				c.id, timeout, c.pc.IsConnectionOpen(), c.Lost())
		}
	}
}

// waitSynced waits until a marker numbered first or later has come back, or deadline.
func (c *Client) waitSynced(first uint64, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c.mu.Lock()
		ok := c.synced >= first
		ch := c.notify
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.synced >= first
		}
	}
}

// waitFor returns the first message at index from or later on topic satisfying pred, waiting
// until deadline; ok is false on timeout. It never fails the test.
func (c *Client) waitFor(from int, topic string, deadline time.Time, pred func(Message) bool) (Message, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	if from < 0 {
		from = 0
	}
	for {
		c.mu.Lock()
		var fresh []Message
		if from < len(c.msgs) {
			fresh = c.msgs[from:] // appends never modify these elements
		}
		ch := c.notify
		c.mu.Unlock()
		for _, m := range fresh { // pred runs unlocked: it may call the Client
			from++
			if m.Topic == topic && (pred == nil || pred(m)) {
				m.Payload = bytes.Clone(m.Payload)
				return m, true
			}
		}
		select {
		case <-ch:
		case <-timer.C:
			return Message{}, false
		}
	}
}

// describe lists the last messages on topic, for failure messages.
func (c *Client) describe(topic string) string {
	const last = 10
	msgs := c.Messages(topic)
	var b strings.Builder
	fmt.Fprintf(&b, "%d message(s) on %s in total", len(msgs), topic)
	if len(msgs) > last {
		fmt.Fprintf(&b, ", the last %d", last)
		msgs = msgs[len(msgs)-last:]
	}
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n\t%s", m)
	}
	fmt.Fprintf(&b, "\n\t(connected: %v, connection lost %d times)", c.pc.IsConnectionOpen(), c.Lost())
	return b.String()
}
