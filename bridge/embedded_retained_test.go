package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// zigbeeSite is a bridge on its embedded broker (no users) whose alarm
// entry expects n Zigbee detectors, each with its availability, all
// retained clear and online before the test goes on: 2n retained safety
// values.
func zigbeeSite(t *testing.T, n int) (*linked, string) {
	t.Helper()
	cfg := testConfig("")
	listen := testbroker.FreeAddr(t)
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: listen}
	cfg.Alarms = append(cfg.Alarms, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
		Expect: n, MaxSources: n, AvailabilityTopic: "zigbee2mqtt/+/availability"})
	l := runLinked(t, cfg)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+listen, "probe", testbroker.ClientOptions{}) == nil
	}, "embedded broker listening on %s", listen)
	conn, code, err := testbroker.RawConnect(listen, "z2m", testbroker.ClientOptions{}, nil)
	if err != nil || code != 0 {
		t.Fatalf("zigbee2mqtt: code %d, %v", code, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() { _, _ = bufio.NewReader(conn).WriteTo(devNull{}) }()
	var b bytes.Buffer
	retain := func(topic, payload string) {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Payload, p.Retain = topic, []byte(payload), true
		p.Write(&b)
	}
	for i := range n {
		retain(fmt.Sprintf("zigbee2mqtt/smoke-%03d", i), `{"smoke":false}`)
		retain(fmt.Sprintf("zigbee2mqtt/smoke-%03d/availability", i), "online")
	}
	retain("db/alarm", "OFF")
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	// mochi retains a message before it delivers it: once the bridge has
	// them all, the broker holds them all.
	l.waitPower("0", true, 2*wait, "every detector clear and online: the fail-safe door locks")
	testbroker.Eventually(t, wait, l.connected, "link proven")
	return l, listen
}

// Review of issue 12 (M2): mochi sends a subscription's retained messages
// in the bridge's own read goroutine, while it handles the bridge's
// SUBSCRIBE, where Flow never waited: with more retained safety values
// than the bridge's queue in the broker holds (a site with 300 Zigbee
// detectors and their availability: 600), those that did not fit at once
// cut the bridge's connection; it reconnected, subscribed, and was cut
// again, for ever, never getting its alarm state (its fail-safe doors
// released all along). Now a safety message waits there for room too: the
// bridge reads while the broker writes.
func TestEmbeddedBrokerRetainedSafetyBurstOnSubscribe(t *testing.T) {
	const n = 300
	l, _ := zigbeeSite(t, n)
	eb := embeddedOf(t, l)
	reconnects := testutil.ToFloat64(l.b.m.mqttReconnects)
	cl, ok := eb.srv.Clients.Get(l.cfg.ClientID())
	if !ok {
		t.Fatal("no bridge client")
	}
	cl.Stop(errors.New("test: the bridge reconnects and reads every retained value again"))
	testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(l.b.m.mqttReconnects) > reconnects }, "the bridge reconnected")
	testbroker.Eventually(t, 2*wait, func() bool { return l.connected() && l.power("0") },
		"the bridge back with every retained value: link proven, the fail-safe door locked (reconnections %v, cut %d times)",
		testutil.ToFloat64(l.b.m.mqttReconnects)-reconnects, l.log.count("ending its connection"))
	if got := testutil.ToFloat64(l.b.m.mqttReconnects) - reconnects; got != 1 {
		t.Errorf("the bridge connected %v times after one cut, want 1", got)
	}
	if n := l.log.count("ending its connection"); n > 0 {
		t.Errorf("the broker cut the bridge %d times", n)
	}
	if n := testutil.ToFloat64(l.b.m.brokerShed.WithLabelValues(queueSafety)); n > 0 {
		t.Errorf("%v safety messages could not be queued for the bridge", n)
	}
}
