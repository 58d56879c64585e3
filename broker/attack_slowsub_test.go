package broker

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// ATTACK (a broker user with few rights: publish and subscribe on its own
// topics, guest/#): mochi copies a message's payload for every subscriber
// and queues up to MaximumClientWritesPending (8192) packets per client
// that does not read. One subscriber that never reads plus one publisher
// of 200 kB messages makes the embedded broker, i.e. the bridge's own
// process, hold 8192 × 256 KiB = 2 GiB per such subscriber (16 per user):
// the bridge is OOM-killed (every maglock released) long before. README
// says the bridge grows by less than 64 MB under the suite's attacks.
// Bounded here: 600 messages (120 MB).
func TestAttackSlowSubscriberHoldsBrokerMemory(t *testing.T) {
	attackProbe(t)
	_, listen, _ := guestBroker(t)
	guest := testbroker.ClientOptions{Username: "guest", Password: "guest-secret-3"}

	sub, code, err := testbroker.RawConnect(listen, "sub", guest, nil)
	if err != nil || code != 0 {
		t.Fatalf("subscriber: %d %v", code, err)
	}
	defer sub.Close()
	if tc, ok := sub.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	s := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	s.MessageID, s.Topics, s.Qoss = 1, []string{"guest/#"}, []byte{0}
	if err := s.Write(sub); err != nil {
		t.Fatal(err)
	}
	if _, err := packets.ReadPacket(sub); err != nil { // SUBACK; then never read again
		t.Fatal(err)
	}

	pub, code, err := testbroker.RawConnect(listen, "pub", guest, nil)
	if err != nil || code != 0 {
		t.Fatalf("publisher: %d %v", code, err)
	}
	defer pub.Close()
	const n = 600
	grew := heapGrowthMB(t, pub, n, false, func(int) (string, bool) { return "guest/x", false })
	t.Logf("%d messages of 200 kB to a subscriber that does not read: the process's heap in use grew by %d MB", n, grew)
	if grew > 64 {
		t.Errorf("a user with few rights made the bridge's process hold %d MB (README: under 64 MB)", grew)
	}
}

// ATTACK (same user): retained messages on distinct topics of its own are
// kept by the embedded broker without any bound on their number or total
// size: 400 retained 200 kB messages are 80 MB held for ever in the
// bridge's process (the broker keeps no persistence; it ends with the
// process). The number is the attacker's choice.
func TestAttackRetainedStoreUnbounded(t *testing.T) {
	attackProbe(t)
	_, listen, _ := guestBroker(t)
	pub, code, err := testbroker.RawConnect(listen, "pub", testbroker.ClientOptions{Username: "guest", Password: "guest-secret-3"}, nil)
	if err != nil || code != 0 {
		t.Fatalf("publisher: %d %v", code, err)
	}
	defer pub.Close()
	const n = 400
	grew := heapGrowthMB(t, pub, n, true, func(i int) (string, bool) { return fmt.Sprintf("guest/%d", i), true })
	t.Logf("%d retained messages of 200 kB, publisher gone: heap in use grew by %d MB", n, grew)
	if grew > 64 {
		t.Errorf("a user with few rights left %d MB of retained messages in the bridge's process", grew)
	}
}

// heapGrowthMB publishes n messages of 200 kB on pub (topic and retain
// flag from msg), waits until the broker has handled them (a PINGREQ
// round trip), closes pub first if closePub, and returns how many MB the
// process's heap in use grew by.
func heapGrowthMB(t *testing.T, pub net.Conn, n int, closePub bool, msg func(i int) (topic string, retain bool)) int64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := []byte(strings.Repeat("x", 200<<10))
	for i := range n {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Payload = payload
		p.TopicName, p.Retain = msg(i)
		if err := p.Write(pub); err != nil {
			t.Fatal(err)
		}
	}
	_ = packets.NewControlPacket(packets.Pingreq).Write(pub)
	_ = pub.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := packets.ReadPacket(pub); err != nil {
		t.Fatal(err)
	}
	if closePub {
		pub.Close()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return (int64(after.HeapInuse) - int64(before.HeapInuse)) >> 20
}
