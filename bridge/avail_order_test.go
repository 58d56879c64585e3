package bridge

import (
	"slices"
	"testing"

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
