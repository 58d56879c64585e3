package bridge

import (
	"errors"
	"fmt"
	"testing"

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
	l, _, retain := zigbeeBroker(t, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
		AvailabilityTopic: "zigbee2mqtt/+/availability"})
	var msgs [][2]string
	for i := range 150 {
		msgs = append(msgs, [2]string{fmt.Sprintf("zigbee2mqtt/lamp%03d/availability", i), "online"},
			[2]string{fmt.Sprintf("zigbee2mqtt/lamp%03d", i), `{"state":"ON"}`})
	}
	retain(append(msgs, [2]string{"zigbee2mqtt/smoke/availability", "online"},
		[2]string{"zigbee2mqtt/smoke", `{"smoke":false}`}, [2]string{"db/alarm", "OFF"})...)
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
