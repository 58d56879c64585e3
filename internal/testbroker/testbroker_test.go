package testbroker

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const wait = 5 * time.Second

func TestStartKindAndAddress(t *testing.T) {
	b := Start(t)
	want := KindMochi
	if os.Getenv(EnvMosquitto) != "" {
		want = KindMosquitto
	}
	if b.Kind() != want {
		t.Errorf("Kind() = %q, want %q", b.Kind(), want)
	}
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Errorf("Addr() = %q, want 127.0.0.1 and a real port", b.Addr())
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q, want tcp://%s", b.URL(), b.Addr())
	}
	t.Logf("broker %s at %s", b.Kind(), b.URL())
}

func TestPublishReceiveRetained(t *testing.T) {
	b := Start(t)
	pub := Connect(t, b.URL(), "pub")
	pub.Publish("door/front/state", "locked", true)
	// mochi acks before it fans out: without Sync, sub could get "locked" both as retained
	// and live.
	pub.Sync(wait)

	sub := Connect(t, b.URL(), "sub")
	m := sub.WaitFor("door/front/state", wait, nil)
	if string(m.Payload) != "locked" || !m.Retained {
		t.Fatalf("got %v, want retained \"locked\"", m)
	}

	mark := sub.Mark()
	pub.Publish("door/front/state", "unlocked", false)
	m = sub.WaitForAfter(mark, "door/front/state", wait, nil)
	if string(m.Payload) != "unlocked" || m.Retained {
		t.Fatalf("got %v, want live \"unlocked\"", m)
	}

	// The latest message already matches: WaitPayload returns that very message.
	again := sub.WaitPayload("door/front/state", "unlocked", time.Millisecond)
	if !again.At.Equal(m.At) {
		t.Fatalf("WaitPayload returned %v, want the recorded %v", again, m)
	}
	// An older message equal to the payload does not count: "locked" must come again.
	pub.Publish("door/front/state", "locked", false)
	m = sub.WaitPayload("door/front/state", "locked", wait)
	if m.Retained {
		t.Fatalf("WaitPayload returned the old retained message %v", m)
	}

	got := sub.Messages("door/front/state")
	if len(got) != 3 {
		t.Fatalf("Messages = %v, want 3", got)
	}
	// The publisher sees its own messages too (it subscribes to #).
	pub.WaitPayload("door/front/state", "locked", wait)
}

func TestKillDropsConnections(t *testing.T) {
	b := Start(t)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("raw").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	raw := paho.NewClient(opts)
	if tok := raw.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer raw.Disconnect(0)
	c := Connect(t, b.URL(), "recorder")

	start := time.Now()
	b.Kill()
	select {
	case err := <-lost:
		t.Logf("connection lost %v after Kill: %v", time.Since(start), err)
	case <-time.After(wait):
		t.Fatal("connection-lost handler did not fire after Kill")
	}
	Eventually(t, wait, func() bool { return c.Lost() > 0 }, "Client.Lost() still 0 after Kill")
	b.Kill() // a second Kill does nothing
}

func TestRestartFreshBroker(t *testing.T) {
	b := Start(t)
	addr := b.Addr()
	c := Connect(t, b.URL(), "survivor")
	c.Publish("door/back/state", "locked", true)
	c.WaitPayload("door/back/state", "locked", wait)

	b.Kill()
	b.Restart()
	if b.Addr() != addr {
		t.Fatalf("Addr changed across Restart: %s -> %s", addr, b.Addr())
	}

	fresh := Connect(t, b.URL(), "fresh")
	fresh.Sync(wait)
	if msgs := fresh.Messages("door/back/state"); len(msgs) != 0 {
		t.Fatalf("restarted broker still has retained messages: %v", msgs)
	}

	// The old Client reconnects and subscribes again on its own.
	mark := c.Mark()
	c.Sync(10 * time.Second)
	if c.Lost() == 0 {
		t.Fatal("Client did not notice the Kill")
	}
	if msgs := c.Messages("door/back/state"); len(msgs) != 1 {
		t.Fatalf("Client got a retained message from the restarted broker: %v", msgs)
	}
	fresh.Publish("door/back/state", "unlocked", false)
	c.WaitForAfter(mark, "door/back/state", wait, func(m Message) bool { return string(m.Payload) == "unlocked" })

	// Restart without Kill kills first.
	b.Restart()
	Connect(t, b.URL(), "third").Sync(wait)
}

func TestProxyPause(t *testing.T) {
	b := Start(t)
	p := NewProxy(t, b.Addr())
	via := Connect(t, p.URL(), "via-proxy")
	direct := Connect(t, b.URL(), "direct")
	if n := p.NumConns(); n != 1 {
		t.Fatalf("NumConns = %d, want 1", n)
	}

	p.Pause()
	markVia, markDirect := via.Mark(), direct.Mark()
	direct.Publish("to/via", "1", false)
	tok := via.Paho().Publish("from/via", 1, false, "2")

	// The broker works: the direct client sees its own message...
	direct.WaitForAfter(markDirect, "to/via", wait, nil)
	// ...but nothing crosses the paused proxy, in either direction (the one short negative wait).
	if m, ok := via.waitFor(markVia, "to/via", time.Now().Add(300*time.Millisecond), nil); ok {
		t.Fatalf("message crossed the paused proxy: %v", m)
	}
	if m, ok := direct.waitFor(markDirect, "from/via", time.Now(), nil); ok {
		t.Fatalf("message crossed the paused proxy: %v", m)
	}
	if !via.Paho().IsConnectionOpen() || via.Lost() != 0 || p.NumConns() != 1 {
		t.Fatalf("paused link dropped: open=%v lost=%d conns=%d", via.Paho().IsConnectionOpen(), via.Lost(), p.NumConns())
	}

	// Bytes held while paused are delivered after Resume.
	p.Resume()
	via.WaitForAfter(markVia, "to/via", wait, nil)
	direct.WaitForAfter(markDirect, "from/via", wait, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish through the resumed proxy: %v", tok.Error())
	}
	if via.Lost() != 0 {
		t.Fatalf("connection lost %d times across Pause/Resume", via.Lost())
	}
}

func TestProxyCloseConns(t *testing.T) {
	b := Start(t)
	p := NewProxy(t, b.Addr())
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(p.URL()).SetClientID("raw-via").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	raw := paho.NewClient(opts)
	if tok := raw.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer raw.Disconnect(0)
	via := Connect(t, p.URL(), "via-proxy")

	// Works while paused too.
	p.Pause()
	p.CloseConns()
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("connection-lost handler did not fire after CloseConns")
	}
	Eventually(t, wait, func() bool { return via.Lost() > 0 }, "Client.Lost() still 0 after CloseConns")

	// New connections through the proxy work again after Resume.
	p.Resume()
	via.Sync(10 * time.Second)
	Connect(t, b.URL(), "direct").Publish("after/close", "x", false)
	via.WaitPayload("after/close", "x", wait)
}

// fakeTB records a Fatalf and ends the goroutine like the real one.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run runs fn as a test body on its own goroutine and returns the Fatalf message, if any.
func (f *fakeTB) run(fn func()) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, wait, func() bool { n++; return n == 3 }, "never reached 3")

	f := &fakeTB{TB: t}
	msg := f.run(func() { Eventually(f, 20*time.Millisecond, func() bool { return false }, "door %s", "stuck") })
	if !strings.Contains(msg, "door stuck") {
		t.Fatalf("Eventually failure message = %q", msg)
	}
}

func TestWaitForTimeoutMessage(t *testing.T) {
	b := Start(t)
	c := Connect(t, b.URL(), "waiter")
	c.Publish("door/side/state", "jammed", false)
	c.WaitPayload("door/side/state", "jammed", wait)

	f := &fakeTB{TB: t}
	c.t = f
	defer func() { c.t = t }()
	msg := f.run(func() { c.WaitPayload("door/side/state", "locked", 50*time.Millisecond) })
	if !strings.Contains(msg, `"locked"`) || !strings.Contains(msg, `door/side/state "jammed"`) {
		t.Fatalf("WaitPayload failure message does not list the last messages:\n%s", msg)
	}
	t.Logf("failure message:\n%s", msg)
}
