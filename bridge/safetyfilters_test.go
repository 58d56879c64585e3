package bridge

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// mqttMatch is MQTT's filter matching, written out again for the test.
func mqttMatch(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fs[0] == "+" || fs[0] == "#") {
		return false
	}
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i == len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

// instances are topics a filter matches, and some near it that it does
// not: each + as a name and as an empty level, a # as one and two levels
// and as nothing, one level more and one less.
func instances(filter string) []string {
	var out []string
	if !strings.HasSuffix(filter, "#") {
		out = append(out, filter+"/extra")
	}
	if i := strings.LastIndex(filter, "/"); i > 0 {
		out = append(out, filter[:i])
	}
	for _, plus := range []string{"kitchen", ""} {
		t := strings.ReplaceAll(filter, "+", plus)
		if base, ok := strings.CutSuffix(t, "/#"); ok {
			out = append(out, base, base+"/a", base+"/a/b")
		} else {
			out = append(out, t)
		}
	}
	return out
}

// Review of issue 12 (item 3): the classifier of safety topics (the
// bridge's safety queue, the embedded broker's priority) and the safety
// filters (the bridge's first SUBSCRIBE, who may go ahead in the embedded
// broker) are built from one list, and agree: a topic is classified safety
// exactly when a safety filter matches it. Before, two lists were kept by
// hand, and the classifier took every MQTT power topic as a plain one: a
// power source on site/+/mains was subscribed to as safety, and its
// messages queued behind commands.
func TestSafetyClassifierMatchesSafetyFilters(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch(), unvalidated(), withConfig(func(c *config.Config) {
		c.Alarms = append(c.Alarms,
			config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false, Expect: 2,
				AvailabilityTopic: "zigbee2mqtt/+/availability"},
			config.Alarm{Topic: "panel/fire", AvailabilityTopic: "zigbee2mqtt/bridge/state",
				HeartbeatTopic: "panel/alive", HeartbeatTimeout: 5 * time.Second})
		c.Power = []config.PowerSource{
			{Type: config.PowerMQTT, Name: "ups", Topic: "ups/status", Timeout: 10 * time.Second},
			{Type: config.PowerMQTT, Name: "site", Topic: "site/+/mains", Timeout: 10 * time.Second},
			{Type: config.PowerMQTT, Name: "pdu", Topic: "pdu/#", Timeout: 10 * time.Second},
		}
	}))
	isSafety, filters := l.safetyTopics(), l.safetyFilters()
	tp := l.b.topics
	var topics []string
	for _, f := range slices.Concat(l.subscriptions()...) {
		topics = append(topics, instances(f)...)
	}
	topics = append(topics, tp.Availability, tp.LockdownSet, tp.Republish, tp.AlarmReset, tp.Heartbeat,
		"db/t1/fs/set", "db/t1/fs/state", "$SYS/broker/uptime", "zigbee2mqtt/kitchen/set", "pdu", "site/a/b/mains")
	for _, want := range []string{"db/alarm", "zigbee2mqtt/+", "zigbee2mqtt/+/availability", "zigbee2mqtt/bridge/state",
		"panel/fire", "panel/alive", "ups/status", "site/+/mains", "pdu/#", tp.AlarmReset, tp.Heartbeat, tp.HAStatus} {
		if !slices.Contains(filters, want) {
			t.Errorf("the safety filters %q lack %s", filters, want)
		}
	}
	for _, topic := range topics {
		matched := slices.ContainsFunc(filters, func(f string) bool { return mqttMatch(f, topic) })
		if got := isSafety(topic); got != matched {
			t.Errorf("%q: classified safety %v, but a safety filter matches it: %v", topic, got, matched)
		}
	}
	for _, topic := range []string{tp.LockdownSet, "db/t1/fs/set", tp.Republish, "homeassistant/device/x/config"} {
		if isSafety(topic) {
			t.Errorf("%s classified safety", topic)
		}
	}
}
