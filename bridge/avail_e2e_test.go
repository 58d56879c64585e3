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

// Review 12 round 2, F1: 150 lamps and one smoke detector on Zigbee2MQTT
// (max_sources 100). The detector's availability came behind more than 100
// others', before the detector was a source (Zigbee2MQTT retains
// availability, not states), and was turned away: alarm_supervision held
// the maglocks released until Zigbee2MQTT published it again. The bridge
// now asks the broker again for a new source's availability.
func TestDetectorAvailabilityBehindManyOthers(t *testing.T) {
	cfg := testConfig("")
	listen := testbroker.FreeAddr(t)
	cfg.EmbeddedBroker = config.EmbeddedBroker{Listen: listen}
	cfg.Alarms = append(cfg.Alarms, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
		AvailabilityTopic: "zigbee2mqtt/+/availability"})
	l := runLinked(t, cfg)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+listen, "probe", testbroker.ClientOptions{}) == nil
	}, "embedded broker listening")
	conn, code, err := testbroker.RawConnect(listen, "z2m", testbroker.ClientOptions{}, nil)
	if err != nil || code != 0 {
		t.Fatalf("z2m: %d %v", code, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() { _, _ = bufio.NewReader(conn).WriteTo(devNull{}) }()
	var b bytes.Buffer
	retain := func(topic, payload string) {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Payload, p.Retain = topic, []byte(payload), true
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 {
		retain(fmt.Sprintf("zigbee2mqtt/lamp%03d/availability", i), "online")
		retain(fmt.Sprintf("zigbee2mqtt/lamp%03d", i), `{"state":"ON"}`)
	}
	retain("zigbee2mqtt/smoke/availability", "online")
	retain("zigbee2mqtt/smoke", `{"smoke":false}`)
	retain("db/alarm", "OFF")
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	eb := embeddedOf(t, l)
	for r := range 4 {
		// Live first (round 0: as Zigbee2MQTT sent them), then after
		// reconnects (retained).
		testbroker.Eventually(t, 2*wait, func() bool { return l.power("0") },
			"round %d: the fail-safe door relocks, every device online", r)
		before := testutil.ToFloat64(l.b.m.mqttReconnects)
		if cl, ok := eb.Server().Clients.Get(l.cfg.ClientID()); ok {
			cl.Stop(errors.New("test: reconnect"))
		}
		testbroker.Eventually(t, wait, func() bool { return testutil.ToFloat64(l.b.m.mqttReconnects) > before }, "reconnected")
		testbroker.Eventually(t, wait, l.connected, "link proven")
	}
}
