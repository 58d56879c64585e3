package bridge

import (
	"errors"
	"net"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A message the embedded broker drops for the bridge's own client (its
// queue full) may be an alarm: the broker ends the bridge's connection, so
// that the bridge raises the broker hazard and gets every retained value
// again, instead of losing it silently. Other clients' drops end nothing.
func TestEmbeddedBrokerEndsTheBridgesConnectionOnADrop(t *testing.T) {
	srv := mochi.New(&mochi.Options{InlineClient: false})
	h := newRetainLimitHook(testLogger(t), func(cl *mochi.Client) bool { return cl.ID == "doorbridge-t1" })
	newClient := func(id string) *mochi.Client {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return srv.NewClient(a, "test", id, false)
	}
	bridge, other := newClient("doorbridge-t1"), newClient("homeassistant")
	pk := packets.Packet{TopicName: "doorbridge/alarm", Payload: []byte("ON")}
	h.OnPublishDropped(other, pk)
	if other.Closed() {
		t.Fatalf("another client's connection was ended by its own drop")
	}
	h.OnPublishDropped(bridge, pk)
	if !bridge.Closed() || !errors.Is(bridge.StopCause(), errBridgeQueueFull) {
		t.Fatalf("a message dropped for the bridge left its connection open (closed %v, cause %v)", bridge.Closed(), bridge.StopCause())
	}
}
