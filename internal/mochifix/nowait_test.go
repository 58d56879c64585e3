package mochifix_test

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbridge/doorbridge/internal/mochifix"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// A NoWait publisher's bulk message goes ahead of every other publisher's
// (review 12 major 3). Home Assistant sends its commands (bulk) and the
// alarm (priority) on one connection: each command held behind a flood
// for a Wait[Bulk] held the alarm in its socket behind it (1.85 s for 20
// commands under a CLI flood; 30 and more: past the heartbeat timeout).
// Now each command waits for the next free room only. Flow's hooks are
// called as mochi calls them, in the order the test chooses: five
// flooders wait for the one bulk room, then Home Assistant's command; the
// room frees once, and Home Assistant's command gets it.
func TestFlowNoWaitPublisherGoesFirst(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	watched := srv.NewClient(nil, "t", "watched", false)
	ha := srv.NewClient(nil, "t", "ha", false)
	var delayed atomic.Int64
	f := &mochifix.Flow{
		Watch:   func(cl *mqtt.Client) bool { return cl == watched },
		ACL:     new(auth.AllowHook).OnACLCheck,
		Class:   func(topic string) mochifix.Class { return mochifix.Bulk },
		Limit:   [2]int{mochifix.Priority: 2, mochifix.Bulk: 1},
		Wait:    [2]time.Duration{mochifix.Priority: time.Minute, mochifix.Bulk: time.Minute},
		Delayed: func(*mqtt.Client, string, mochifix.Class) { delayed.Add(1) },
		NoWait:  func(cl *mqtt.Client) bool { return cl == ha },
	}
	if !f.OnACLCheck(watched, "junk", false) {
		t.Fatal("the first message not let in")
	}
	let := make(chan string, 8)
	deliver := func(who, topic string) {
		if f.OnACLCheck(watched, topic, false) {
			let <- who
		}
	}
	const flooders = 5
	for range flooders {
		go deliver("flooder", "junk")
	}
	testbroker.Eventually(t, 10*time.Second, func() bool { return delayed.Load() == flooders }, "the flooders held")
	pk, err := f.OnPublish(ha, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "db/t1/front/set"})
	if err != nil {
		t.Fatal(err)
	}
	go deliver("ha", pk.TopicName)
	testbroker.Eventually(t, 10*time.Second, func() bool { return delayed.Load() == flooders+1 }, "Home Assistant's command held")

	f.OnPacketSent(watched, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}}, nil)
	if who := <-let; who != "ha" {
		t.Errorf("the free room went to a %s, not to Home Assistant's command waiting behind %d flooders", who, flooders)
	}
	f.OnPacketProcessed(ha, pk, nil)
	f.OnDisconnect(watched, nil, false) // the flooders go
}
