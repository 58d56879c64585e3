package mqttclient

import (
	"bufio"
	"bytes"
	"net"
	"runtime"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
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
	c.filter = &packetFilter{rd: c.rd, max: packetLimit(DefaultMaxPayload)}
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
