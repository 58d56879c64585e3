package bridge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// Review 12 F2: an availability is kept beyond max_sources only for a
// source already seen, so the broker must send the detectors' values
// before their availabilities. In one SUBSCRIBE the order was the broker's
// (half the connections: every availability first), and 100 lamps'
// availabilities pushed out the detector's own: alarm_supervision held the
// maglocks released with every device online. The availability filters
// now have a SUBSCRIBE of their own, after the values', both safety.
func TestAvailabilitySubscribedAfterValues(t *testing.T) {
	l, _ := newTestLoop(t, withAlarms(config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
		AvailabilityTopic: "zigbee2mqtt/+/availability", AvailabilityOffline: config.DefaultAvailabilityOffline}))
	groups := l.subscriptions()
	group := func(f string) int {
		for i, g := range groups {
			if slices.Contains(g, f) {
				return i
			}
		}
		t.Fatalf("%s not subscribed: %v", f, groups)
		return -1
	}
	v, a, cmd := group("zigbee2mqtt/+"), group("zigbee2mqtt/+/availability"), group(l.b.topics.DoorCommandWild)
	if !(v < a && a < safetyGroups && safetyGroups <= cmd) {
		t.Fatalf("groups: values %d, availability %d, commands %d (safety groups %d): %v", v, a, cmd, safetyGroups, groups)
	}
}

// Review 12 F2, live: Zigbee2MQTT publishes a device's availability just
// before its first value. With 150 lamps' availabilities already in the
// table (max_sources 100), the detector's arrived when the table was full
// and was dropped; alarm_supervision then held the maglocks released. It
// now takes the place of the oldest device that is not a source. The same
// with every availability first (one SUBSCRIBE in the broker's order).
func TestDetectorAvailabilityBeforeItsValueBeyondMaxSources(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/+/availability"
	a.AvailabilityOffline = config.DefaultAvailabilityOffline
	for _, order := range []string{"device by device", "every availability first"} {
		l, _ := newTestLoop(t, withAlarms(a))
		src := &l.alarms[0]
		src.reset()
		if order == "device by device" {
			for i := range 150 {
				l.send(fmt.Sprintf("zigbee2mqtt/lamp%d/availability", i), "online", false)
				l.send(fmt.Sprintf("zigbee2mqtt/lamp%d", i), `{"state": "ON"}`, false)
			}
			l.send("zigbee2mqtt/kitchen_smoke/availability", `{"state":"online"}`, false)
			l.send("zigbee2mqtt/kitchen_smoke", `{"smoke": false}`, false)
		} else {
			for i := range 200 {
				l.send(fmt.Sprintf("zigbee2mqtt/lamp%d/availability", i), "online", true)
			}
			l.send("zigbee2mqtt/kitchen_smoke/availability", `{"state":"online"}`, true)
			for i := range 200 {
				l.send(fmt.Sprintf("zigbee2mqtt/lamp%d", i), `{"state": "ON"}`, true)
			}
			l.send("zigbee2mqtt/kitchen_smoke", `{"smoke": false}`, true)
		}
		if why := src.supervision(time.Time{}); why != "" || len(src.offline) > a.SourceLimit()+1 {
			t.Errorf("%s: supervision %q, %d availabilities kept (max_sources %d)", order, why, len(src.offline), a.SourceLimit())
		}
	}
}
