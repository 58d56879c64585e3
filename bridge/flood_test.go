package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// floodJunkCommands adds junk door commands to the flood. Before cmdpath's
// cheap rejection was merged, each rejected command cost a log line, an
// audit record and two publishes, whose answers queued on the bridge's own
// connection ahead of its heartbeat probe: the broker hazard followed.
const floodJunkCommands = true

// floodDuration is how long TestFloodDoesNotDelayAlarm floods: 2 s by
// default, DOORBRIDGE_TEST_FLOOD (a Go duration, e.g. 10s) for longer.
func floodDuration(t *testing.T) time.Duration {
	if v := os.Getenv("DOORBRIDGE_TEST_FLOOD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("DOORBRIDGE_TEST_FLOOD=%q: %v", v, err)
		}
		return d
	}
	return 2 * time.Second
}

// flooder publishes junk at QoS 0 as fast as one TCP connection and the
// broker take it, from a raw socket (no client library in the way).
type flooder struct {
	conn net.Conn
	sent atomic.Int64
	stop chan struct{}
	done sync.WaitGroup
}

// startFlooder writes msgs again and again, and every 64th time also big
// (when its payload is set).
func startFlooder(t *testing.T, addr, id string, msgs [][2]string, big [2]string) *flooder {
	t.Helper()
	conn := rawConnect(t, addr, id)
	encode := func(msgs [][2]string) []byte {
		var b bytes.Buffer
		for _, m := range msgs {
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName, p.Payload = m[0], []byte(m[1])
			p.Write(&b)
		}
		return b.Bytes()
	}
	batch := encode(msgs)
	var bigPkt []byte
	if big[1] != "" {
		bigPkt = encode([][2]string{big})
	}
	f := &flooder{conn: conn, stop: make(chan struct{})}
	f.done.Add(2)
	go func() { // the broker sends nothing, but a socket is read
		defer f.done.Done()
		_, _ = bufio.NewReader(conn).WriteTo(devNull{})
	}()
	go func() {
		defer f.done.Done()
		for i := 0; ; i++ {
			select {
			case <-f.stop:
				return
			default:
			}
			if _, err := conn.Write(batch); err != nil {
				return
			}
			f.sent.Add(int64(len(msgs)))
			if bigPkt != nil && i%64 == 0 {
				if _, err := conn.Write(bigPkt); err != nil {
					return
				}
				f.sent.Add(1)
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *flooder) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
		f.conn.Close()
		f.done.Wait()
	}
}

// rawConnect opens an MQTT connection on a plain socket, for writing
// packets by hand.
func rawConnect(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion, c.ClientIdentifier, c.CleanSession, c.Keepalive = "MQTT", 4, id, true, 60
	if err := c.Write(conn); err != nil {
		t.Fatal(err)
	}
	if ack, err := packets.ReadPacket(conn); err != nil || ack.(*packets.ConnackPacket).ReturnCode != 0 {
		t.Fatalf("raw client CONNACK: %v %v", ack, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// Junk at the broker's full rate on every topic the bridge subscribes to
// (but the alarm value itself: junk there is an alarm, R5) never delays the
// heartbeat echo or an alarm: no broker hazard, and an alarm sent in the
// middle of the flood still releases (issue 12 item 5). Run on both brokers
// (DOORBRIDGE_TEST_MOSQUITTO=1 for mosquitto).
func TestFloodDoesNotDelayAlarm(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		// The shipped timings: the test is about junk, not about a loaded CI machine.
		c.Watchdog.HeartbeatInterval, c.Watchdog.HeartbeatTimeout = time.Second, 3*time.Second
	})
	h.ready()
	big := strings.Repeat("x", maxInbound+1)
	junk := [][2]string{
		{"db/t1/heartbeat", "1 1800000000000000000 junk"},
		{"db/t1/republish", "junk"},
		{"homeassistant/status", "junk"},
		{"homeassistant/device/x/config", `{"junk": true}`},
		{"db/t1/alarm/reset", "junk"},
		{"db/t1/alarm/latched", "junk"},
	}
	if floodJunkCommands {
		junk = append(junk, [2]string{"db/t1/fsec/set", "JUNK"}, [2]string{"db/t1/lockdown/set", "MAYBE"})
		for i := range 20 {
			junk = append(junk, [2]string{fmt.Sprintf("db/t1/junk%d/set", i), "UNLOCK"})
		}
	}
	brokerTrips := func() float64 { return testutil.ToFloat64(h.b.m.hazardsRaised.WithLabelValues(HazardBroker.String())) }
	before := brokerTrips()
	// The test's watcher would record every junk message: it stops listening.
	if tok := h.c.Paho().Unsubscribe("#"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	dur := floodDuration(t)
	f := startFlooder(t, h.broker.Addr(), "flooder", junk, [2]string{"db/t1/fs/set", big})
	start := time.Now()
	testbroker.Eventually(t, wait, func() bool { return f.sent.Load() > 10000 }, "the flood is on")

	// The alarm, from another client, half-way through the flood.
	time.Sleep(dur / 2) // the flood's own length, not a wait for an outcome
	sent := time.Now()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "an alarm releases the maglock during the flood")
	t.Logf("alarm during the flood: maglock released %v after the alarm was published", time.Since(sent).Round(time.Millisecond))
	if rest := dur - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	f.close()
	t.Logf("%s: %d junk messages written to the broker's socket in %v (%.0f/s); dropped before the loop: %s",
		h.broker.Kind(), f.sent.Load(), dur, float64(f.sent.Load())/dur.Seconds(), dropped(h.b))
	t.Logf("rejected: unknown door %.0f, fsec unknown_command %.0f, publishes dropped %.0f",
		testutil.ToFloat64(h.b.m.commandsRejected.WithLabelValues(unknownDoorLabel, rejectUnknownDoor)),
		testutil.ToFloat64(h.b.m.commandsRejected.WithLabelValues("fsec", rejectUnknownCommand)),
		testutil.ToFloat64(h.b.m.publishDropped))
	if n := brokerTrips() - before; n > 0 {
		t.Fatalf("the flood raised the broker hazard %v time(s): the heartbeat echo waited behind junk", n)
	}
	if testutil.ToFloat64(h.b.m.mqttDropped.WithLabelValues(dropOversized, queueOther)) == 0 {
		t.Errorf("no oversized message counted as dropped")
	}
}

func dropped(b *Bridge) string {
	var parts []string
	for _, r := range []string{dropOversized, dropQueueFull, dropBadHeartbeat} {
		for _, q := range []string{queueSafety, queueOther} {
			if n := testutil.ToFloat64(b.m.mqttDropped.WithLabelValues(r, q)); n > 0 {
				parts = append(parts, fmt.Sprintf("%s/%s=%.0f", r, q, n))
			}
		}
	}
	return strings.Join(parts, " ")
}
