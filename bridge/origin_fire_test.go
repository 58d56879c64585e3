package bridge

import (
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// Review 12 F3: a fire reported by a new detector under a wildcard entry
// with an availability topic. The same evaluation starts that source's
// supervision trouble ("no availability yet"); updateSupervision then
// replaces the evaluation's origin, so the alarm hazard and the relay
// release are recorded as caused by alarm_supervision, not by the alarm.
func TestFireOriginNotSupervision(t *testing.T) {
	l, clk := newTestLoop(t, withoutLatch(), withConfig(func(c *config.Config) {
		c.Alarms = append(c.Alarms, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false,
			AvailabilityTopic: "zigbee2mqtt/+/availability", AvailabilityOffline: config.DefaultAvailabilityOffline})
	}))
	l.alarm("OFF")
	l.send("zigbee2mqtt/kitchen/availability", "online", true)
	l.send("zigbee2mqtt/kitchen", `{"smoke":false}`, true)
	l.settle(clk)
	if l.raw.Any() {
		// fall through: print what we have
		t.Logf("before: raw=%v", l.raw)
	}
	l.flushLater()
	got := originsOf(l)
	l.link()
	l.send("zigbee2mqtt/garage", `{"smoke":true}`, false)
	l.waitRelays(wait, "relay")
	l.flushLater()
	for _, e := range *got {
		t.Logf("audit: kind=%s hazard=%s outcome=%s door=%s origin=%s", e.Kind, e.Hazard, e.Outcome, e.Door, e.Origin)
	}
	for _, e := range *got {
		if e.Kind == "hazard" && e.Hazard == HazardAlarm.String() && e.Outcome == "raised" && e.Origin != "alarm:zigbee2mqtt/garage" {
			t.Errorf("fire on zigbee2mqtt/garage: alarm hazard recorded with origin %q", e.Origin)
		}
		if e.Kind == "relay" && e.Door == "fs" && e.Origin != "alarm:zigbee2mqtt/garage" {
			t.Errorf("fire on zigbee2mqtt/garage: fs relay %s recorded with origin %q", e.Outcome, e.Origin)
		}
	}
}
