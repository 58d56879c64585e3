package bridge

import (
	"bufio"
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// An oversized PUBLISH never reaches paho: it is skipped through the read
// buffer (a few kB held, not its size) and replaced by an empty PUBLISH
// that keeps its topic, QoS and packet id; the packets around it pass whole.
func TestPacketFilterSkipsOversizedPublish(t *testing.T) {
	const size = 4 << 20
	pub := func(topic string, qos byte, id uint16, payload []byte) []byte {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Payload, p.Retain = topic, qos, id, payload, true
		var b bytes.Buffer
		p.Write(&b)
		return b.Bytes()
	}
	var stream bytes.Buffer
	stream.Write(pub("db/alarm", 1, 77, make([]byte, size)))
	stream.Write(pub("db/t1/fs/set", 0, 0, []byte("LOCK")))
	stream.Write([]byte{packets.Pingresp << 4, 0})
	wire := stream.Bytes()

	a, b := net.Pipe()
	defer a.Close()
	go func() {
		defer b.Close()
		b.Write(wire)
	}()
	c := &Conn{Conn: a, rd: bufio.NewReaderSize(a, readBuffer)}
	c.filter = &packetFilter{rd: c.rd, max: packetLimit(maxInbound)}
	c.settled.Store(true)
	c.accepted.Store(true)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p1, err := packets.ReadPacket(c)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	got := p1.(*packets.PublishPacket)
	if got.TopicName != OversizedTopic+"db/alarm" || got.Qos != 1 || got.MessageID != 77 || !got.Retain || len(got.Payload) != 0 {
		t.Fatalf("replacement: topic %q qos %d id %d retain %v payload %d bytes", got.TopicName, got.Qos, got.MessageID, got.Retain, len(got.Payload))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("reading past a %d MB message allocated %d kB", size>>20, alloc>>10)
	}
	p2, err := packets.ReadPacket(c)
	if err != nil {
		t.Fatal(err)
	}
	if m := p2.(*packets.PublishPacket); m.TopicName != "db/t1/fs/set" || string(m.Payload) != "LOCK" {
		t.Fatalf("the next message: %q %q", m.TopicName, m.Payload)
	}
	p3, err := packets.ReadPacket(c)
	if _, ok := p3.(*packets.PingrespPacket); !ok || err != nil {
		t.Fatalf("PINGRESP after it: %v %v", p3, err)
	}
}

// Through a real broker: a 1 MB alarm message (QoS 1) is skipped under
// paho, counts as a junk value (alarm: the maglock releases), and the QoS 1
// flow goes on: the next OFF relocks.
func TestOversizedAlarmThroughBroker(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		// The shipped timings: a 1 MiB message under -race on a loaded
		// machine held up the heartbeat echo past 500 ms, and the broker
		// hazard released the door before the message was counted.
		c.Watchdog.HeartbeatInterval, c.Watchdog.HeartbeatTimeout = time.Second, 3*time.Second
	})
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "locked once the alarm is clear")
	h.c.Publish(h.alarmTopic(), string(make([]byte, 1<<20)), false)
	h.waitPower("0", false, wait, "an oversized alarm value is junk: alarm")
	oversized := func() float64 {
		return testutil.ToFloat64(h.b.m.mqttDropped.WithLabelValues(dropOversized, queueSafety))
	}
	testbroker.Eventually(t, wait, func() bool { return oversized() >= 1 }, "the oversized alarm counted on the safety queue")
	if n := oversized(); n != 1 {
		t.Fatalf("oversized on the safety queue counted %v times, want 1", n)
	}
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.Publish(h.topic("fs", "set"), "LOCK", false) // alarm_latch: the latch holds, but commands flow
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.waitPower("0", true, wait, "OFF and RESET after it relock: the QoS 1 flow was not stalled")
}
