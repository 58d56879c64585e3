package mqttclient

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/doorbridge/doorbridge/config"
)

// wait bounds every wait of these tests: generous, for a loaded machine.
const wait = 10 * time.Second

// The configured brokers come first; without any, the embedded broker's
// socket, else its listen address, an unspecified host reached on loopback.
func TestDialURLs(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
		want []string
	}{
		{"urls", func(c *config.Config) {
			c.MQTT.URLs, c.MQTT.URL = []string{"ssl://a:8883", "ssl://b:8883"}, "tcp://c:1883"
		}, []string{"ssl://a:8883", "ssl://b:8883"}},
		{"url", func(c *config.Config) { c.MQTT.URL = "tcp://c:1883" }, []string{"tcp://c:1883"}},
		{"socket-only", func(c *config.Config) { c.EmbeddedBroker.Listen, c.EmbeddedBroker.Socket = "", "/run/db/mqtt.sock" }, []string{"unix:///run/db/mqtt.sock"}},
		{"any-ipv4", func(c *config.Config) { c.EmbeddedBroker.Listen = "0.0.0.0:1883" }, []string{"tcp://127.0.0.1:1883"}},
		{"any-ipv6", func(c *config.Config) { c.EmbeddedBroker.Listen = "[::]:1883" }, []string{"tcp://[::1]:1883"}},
		{"no-host", func(c *config.Config) { c.EmbeddedBroker.Listen = ":1883" }, []string{"tcp://127.0.0.1:1883"}},
		{"host", func(c *config.Config) { c.EmbeddedBroker.Listen = "192.0.2.7:1883" }, []string{"tcp://192.0.2.7:1883"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg config.Config
			tc.set(&cfg)
			if got := DialURLs(&cfg); !slices.Equal(got, tc.want) {
				t.Fatalf("DialURLs = %q, want %q", got, tc.want)
			}
		})
	}
}

// fakeBroker accepts one connection on loopback, reads the client's
// CONNECT and answers with a CONNACK of return code rc.
func fakeBroker(t *testing.T, rc byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := packets.ReadPacket(c); err != nil {
			return
		}
		ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
		ack.ReturnCode = rc
		ack.Write(c)
		io.Copy(io.Discard, c) // until the client hangs up
	}()
	return "tcp://" + ln.Addr().String()
}

// connectOnce connects once through Options and returns what the dialer
// reported, in order.
func connectOnce(t *testing.T, url string) []error {
	t.Helper()
	var mu sync.Mutex
	var reports []error
	opts, err := Options(&config.Config{}, Settings{URLs: []string{url}, Timeout: wait, Report: func(_ string, err error) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(opts.SetClientID("probe").SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	if !tok.WaitTimeout(2 * wait) {
		t.Fatal("no answer to CONNECT")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(reports)
}

// A broker's refusal, read off the connection before paho sees it, is
// reported once and explained with the setting to check; an accepted
// connection is reported as nil.
func TestRefusalsReportedAndExplained(t *testing.T) {
	for _, tc := range []struct {
		rc   byte
		want string // "" = accepted
	}{
		{packets.Accepted, ""},
		{packets.ErrRefusedBadUsernameOrPassword, "the broker refused the login (bad user name or password): check mqtt.username and mqtt.password_file"},
		{packets.ErrRefusedNotAuthorised, "the broker refused the login (not Authorized): check mqtt.username and mqtt.password_file"},
		{packets.ErrRefusedIDRejected, "the broker rejected the client id: check mqtt.client_id"},
		{packets.ErrRefusedServerUnavailable, "broker refused the connection: "},
	} {
		reports := connectOnce(t, fakeBroker(t, tc.rc))
		if len(reports) != 1 {
			t.Fatalf("return code %d: %d reports (%v), want 1", tc.rc, len(reports), reports)
		}
		switch err := reports[0]; {
		case tc.want == "" && err != nil:
			t.Errorf("accepted: reported %v, want nil", err)
		case tc.want != "" && err == nil:
			t.Errorf("return code %d: reported as accepted", tc.rc)
		case tc.want != "" && !strings.HasPrefix(ExplainConnectError(err), tc.want):
			t.Errorf("return code %d: %q, want it to start with %q", tc.rc, ExplainConnectError(err), tc.want)
		}
	}
}

// Nobody listening: the dial's error is reported and explained.
func TestConnectionRefusedExplained(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reports := connectOnce(t, "tcp://"+addr)
	if len(reports) != 1 || reports[0] == nil {
		t.Fatalf("reports %v, want one error", reports)
	}
	if got, want := ExplainConnectError(reports[0]), "connection refused: no broker listening at that address"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

// An in-process broker is dialed through the function it registered,
// until it unregisters.
func TestInprocDial(t *testing.T) {
	var dialed []net.Conn
	unregister := RegisterInproc("test-broker", func(context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		t.Cleanup(func() { b.Close() })
		dialed = append(dialed, b)
		return a, nil
	})
	d := &dialer{timeout: wait, maxPacket: packetLimit(DefaultMaxPayload)}
	u := mustURL(t, "inproc://test-broker")
	c, err := d.open(u, paho.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(dialed) != 1 {
		t.Fatalf("the registered dial ran %d times, want 1", len(dialed))
	}
	unregister()
	if _, err := d.open(u, paho.ClientOptions{}); err == nil || !strings.Contains(err.Error(), `no embedded broker "test-broker" in this process`) {
		t.Fatalf("after unregister: %v", err)
	}
}

// A tracked connection reports its loss once, with the last read error,
// and is live only between its CONNACK and its close.
func TestConnReportsItsLossOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var tracked *Conn
	var losses []error
	d := &dialer{timeout: wait, maxPacket: packetLimit(DefaultMaxPayload), track: func(c *Conn) {
		tracked = c
		c.OnClose(func(err error) { losses = append(losses, err) })
	}}
	c, err := d.open(mustURL(t, "tcp://"+ln.Addr().String()), paho.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	broker, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if tracked == nil || tracked != c {
		t.Fatalf("tracked %p, dialed %p: the tracker must see the connection paho gets", tracked, c)
	}
	if tracked.Live() {
		t.Fatal("live before the CONNACK")
	}
	broker.Write([]byte{packets.Connack << 4, 2, 0, packets.Accepted})
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if !tracked.Live() {
		t.Fatal("not live after an accepting CONNACK")
	}
	broker.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the broker hung up: %v, want EOF", err)
	}
	c.Close()
	c.Close()
	if tracked.Live() {
		t.Fatal("live after Close")
	}
	if len(losses) != 1 || !errors.Is(losses[0], io.EOF) {
		t.Fatalf("losses reported: %v, want one, EOF", losses)
	}
}
