package broker

import (
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
)

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
		"bridge": bridgeACL(testConfig()),
	}}
	reset := newTopics(testConfig()).AlarmReset
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
