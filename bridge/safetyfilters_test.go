package bridge

import (
	"slices"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

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

// The embedded broker's flow lets a publisher that may publish a safety
// topic go ahead of the others (bridgeFlow.noWait). Review of issue 12
// (item 4): that check took a publish pattern overlapping a safety filter
// as enough, deny rules ignored, where the broker's own check of the
// publication refuses it. Now it asks that check (mayPublish).
func TestSafetyPublisherHonoursDenyRules(t *testing.T) {
	h := &authHook{acl: map[string]aclRules{
		"denied":  {publish: []string{"doorbridge/#"}, deny: []string{"doorbridge/alarm"}},
		"allowed": {publish: []string{"doorbridge/#"}, deny: []string{"doorbridge/other"}},
		"device":  {publish: []string{"zigbee2mqtt/kitchen"}},
		"under":   {publish: []string{"z/#"}, deny: []string{"z/+"}},
		"nothing": {publish: []string{"zigbee2mqtt/kitchen/set"}},
		// The bridge's own rules: it publishes under its prefix but never
		// the reset.
		"bridge": bridgeACL(testConfig("")),
	}}
	reset := NewTopics(testConfig("")).AlarmReset
	for _, c := range []struct {
		user    string
		filters []string
		want    bool
	}{
		{"denied", []string{"doorbridge/alarm"}, false},
		{"allowed", []string{"doorbridge/alarm"}, true},
		{"device", []string{"zigbee2mqtt/+"}, true},
		{"under", []string{"z/#"}, true}, // z, z/a/b
		{"under", []string{"z/+"}, false},
		{"nothing", []string{"zigbee2mqtt/+", "zigbee2mqtt/+/availability"}, false},
		{"bridge", []string{reset}, false},
		{"bridge", []string{reset, "db/t1/heartbeat"}, true},
		{"stranger", []string{"#"}, false},
	} {
		pub := safetyPublisher(h, c.filters)
		cl := &mochi.Client{}
		cl.Properties.Username = []byte(c.user)
		if got := pub(cl); got != c.want {
			t.Errorf("%s publishing under %q goes ahead: %v, want %v", c.user, c.filters, got, c.want)
		}
	}
}

func TestFilterMeet(t *testing.T) {
	for _, c := range []struct {
		a, b, want string
		ok         bool
	}{
		{"doorbridge/#", "doorbridge/alarm", "doorbridge/alarm", true},
		{"a/#", "a", "a", true},
		{"#", "zigbee2mqtt/+/availability", "zigbee2mqtt/+/availability", true},
		{"zigbee2mqtt/kitchen", "zigbee2mqtt/+", "zigbee2mqtt/kitchen", true},
		{"a/+/c", "a/b/+", "a/b/c", true},
		{"a/+/#", "+/b", "a/b", true},
		{"a/b", "a/c", "", false},
		{"a/b", "a/b/c", "", false},
	} {
		got, ok := filterMeet(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("meet(%q, %q) = %q, %v; want %q, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
		if back, _ := filterMeet(c.b, c.a); back != got {
			t.Errorf("meet(%q, %q) = %q, but %q the other way round", c.a, c.b, got, back)
		}
	}
}
