package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// The topics kept as sources of a wildcard entry are bounded (max_sources,
// default 100): a flood of made-up topics neither grows memory without end
// nor reads as clear; beyond the bound the entry is alarm until the next
// connection (issue 12, item 10).
func TestWildcardSourcesBounded(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/+/availability"
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	src := &l.alarms[0]
	for i := range 1000 {
		l.send(fmt.Sprintf("zigbee2mqtt/fake%d/availability", i), "online", true)
		l.send(fmt.Sprintf("zigbee2mqtt/fake%d", i), `{"smoke": false}`, true)
	}
	if len(src.values) > 100 || len(src.offline) > 100 {
		t.Fatalf("%d sources and %d availabilities kept after 1000 made-up topics, want at most 100", len(src.values), len(src.offline))
	}
	if !l.raw.Has(HazardAlarm) {
		t.Fatalf("entry clear after more topics than it keeps")
	}
	// A new connection starts over.
	src.reset()
	l.send("zigbee2mqtt/kitchen/availability", "online", true)
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	if l.raw.Has(HazardAlarm) {
		t.Fatalf("alarm after a new connection's only source is clear: %s", src.describe())
	}
}

// With sources listed, only they meet expect: a clear from made-up topics
// does not count, while an alarm from any matching topic does.
func TestWildcardListedSources(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.Sources = []string{"zigbee2mqtt/kitchen", "zigbee2mqtt/hall"}
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	hazard := func() bool { return l.raw.Has(HazardAlarm) }
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/fake1", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/fake2", `{"smoke": false}`, true)
	if !hazard() {
		t.Fatal("made-up topics met expect")
	}
	l.send("zigbee2mqtt/hall", `{"smoke": false}`, true)
	if hazard() {
		t.Fatalf("alarm with both listed sources clear: %s", l.alarms[0].describe())
	}
	l.send("zigbee2mqtt/garage", `{"smoke": true}`, false)
	if !hazard() || !l.latched {
		t.Fatal("an alarm from an unlisted topic under the wildcard was ignored")
	}
}

// More than max_sources devices share Zigbee2MQTT's wildcard: after a
// reconnect their retained availability comes in no fixed order. The
// detector's own must be kept even behind 199 lamps', or alarm_supervision
// lasted until Zigbee2MQTT republished it, which it does only on a change
// (re-review of issue 12 item 5, M1). The bound on junk stays.
func TestAvailabilityOfSourceKeptBeyondMaxSources(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/+/availability"
	a.AvailabilityOffline = config.DefaultAvailabilityOffline
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	src := &l.alarms[0]
	connection := func(detectorAt int) {
		src.reset()
		for i := range 200 {
			if i == detectorAt {
				l.send("zigbee2mqtt/kitchen_smoke", `{"smoke": false}`, true)
			}
			l.send(fmt.Sprintf("zigbee2mqtt/lamp%d", i), `{"state": "ON"}`, true)
		}
		for i := range 200 {
			if i == detectorAt {
				l.send("zigbee2mqtt/kitchen_smoke/availability", `{"state":"online"}`, true)
			}
			l.send(fmt.Sprintf("zigbee2mqtt/lamp%d/availability", i), "online", true)
		}
	}
	for _, at := range []int{0, 150, 199} {
		connection(at)
		if l.raw.Any() {
			t.Fatalf("detector's values at %d of 200 devices: hazards %v (%s)", at, l.raw, src.supervision(time.Time{}))
		}
		if len(src.offline) > 101 {
			t.Fatalf("%d availabilities kept, want at most max_sources and the detector's", len(src.offline))
		}
	}
}
