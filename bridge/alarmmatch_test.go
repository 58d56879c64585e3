package bridge

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/doorbridge/doorbridge/config"
)

// setPlain sets the value of a plain-topic entry, as its topic would.
func (a *alarmSource) setPlain(v alarmValue) { a.values[a.cfg.Topic] = v }

func TestTopicPattern(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		ok            bool
		captures      []string
	}{
		{"db/alarm", "db/alarm", true, nil},
		{"db/alarm", "db/alarm/x", false, nil},
		{"db/alarm", "db", false, nil},
		{"zigbee2mqtt/+", "zigbee2mqtt/kitchen", true, []string{"kitchen"}},
		{"zigbee2mqtt/+", "zigbee2mqtt/", true, []string{""}}, // + matches an empty level, as in MQTT
		{"zigbee2mqtt/+", "zigbee2mqtt/kitchen/availability", false, nil},
		{"zigbee2mqtt/+", "zigbee2mqtt", false, nil},
		{"zigbee2mqtt/+", "other/kitchen", false, nil},
		{"+/smoke/+", "a/smoke/b", true, []string{"a", "b"}},
		{"+/smoke/+", "$SYS/smoke/b", false, nil}, // wildcards never match $ topics
		{"+", "x", true, []string{"x"}},
		{"+", "x/y", false, nil},
	} {
		got, ok := newTopicPattern(c.filter).match(c.topic)
		if ok != c.ok || !slices.Equal(got, c.captures) {
			t.Errorf("%q.match(%q) = %q, %v; want %q, %v", c.filter, c.topic, got, ok, c.captures, c.ok)
		}
	}
	if got := newTopicPattern("zigbee2mqtt/+/availability").expand([]string{"kitchen"}); got != "zigbee2mqtt/kitchen/availability" {
		t.Errorf("expand = %q", got)
	}
}

func jsonAlarm(path string, on, off any) config.Alarm {
	return config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: path, On: on, Off: off}
}

func TestPayloadMatcherJSON(t *testing.T) {
	smoke := newPayloadMatcher(jsonAlarm("smoke", true, false))
	state := newPayloadMatcher(jsonAlarm("alarm.state", "FIRE", "NORMAL"))
	level := newPayloadMatcher(jsonAlarm("level", 2, 0))
	for _, c := range []struct {
		m       payloadMatcher
		payload string
		want    matchResult
	}{
		{smoke, `{"smoke": true, "battery": 90}`, matchOn},
		{smoke, `{"smoke": false, "battery": 90, "linkquality": 120}`, matchOff},
		{smoke, `{"battery": 90}`, matchNoPath},
		{smoke, `{"smoke": null}`, matchNull},
		{smoke, ``, matchEmpty},
		{smoke, `ON`, matchNotJSON},
		{smoke, `{"smoke": true`, matchNotJSON},
		{smoke, `{"smoke": "true"}`, matchUnexpected}, // a string is not a bool
		{smoke, `{"smoke": 1}`, matchUnexpected},
		{smoke, `{"smoke": {"x": 1}}`, matchUnexpected},
		{smoke, `{"smoke": [false]}`, matchUnexpected},
		{smoke, `[{"smoke": false}]`, matchNoPath},
		{smoke, `"x"`, matchNoPath},
		{smoke, `{"smoke": false, "smoke": true}`, matchOff}, // gjson takes the first; both are JSON
		{state, `{"alarm": {"state": "FIRE"}}`, matchOn},
		{state, `{"alarm": {"state": "NORMAL"}}`, matchOff},
		{state, `{"alarm": {"state": "normal"}}`, matchUnexpected},
		{state, `{"alarm": {"state": "NOR\u004dAL"}}`, matchOff}, // escapes are decoded
		{state, `{"alarm": "NORMAL"}`, matchNoPath},
		{level, `{"level": 0}`, matchOff},
		{level, `{"level": 0.0}`, matchOff}, // numbers compare by value
		{level, `{"level": -0}`, matchOff},
		{level, `{"level": 2e0}`, matchOn},
		{level, `{"level": "0"}`, matchUnexpected},
		{level, `{"level": 1}`, matchUnexpected},
	} {
		if got := c.m.match([]byte(c.payload)); got != c.want {
			t.Errorf("%s: match(%s) = %v, want %v", c.m.path, c.payload, got, c.want)
		}
	}
}

func TestPayloadMatcherPlain(t *testing.T) {
	m := newPayloadMatcher(config.DefaultAlarm("db"))
	for p, want := range map[string]matchResult{"ON": matchOn, "OFF": matchOff, "": matchEmpty, "on": matchUnexpected, `{"smoke": false}`: matchUnexpected} {
		if got := m.match([]byte(p)); got != want {
			t.Errorf("plain match(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzAlarmMatch: the matcher never panics, is deterministic, and says
// "clear" only for a payload whose value at the path is exactly the off
// value (never for something it could not read).
func FuzzAlarmMatch(f *testing.F) {
	for _, s := range []struct{ path, payload string }{
		{"smoke", `{"smoke": true, "battery": 90}`},
		{"smoke", `{"smoke": false, "battery": 100, "linkquality": 87, "tamper": false}`},
		{"smoke", `{"battery": 90}`},
		{"smoke", `{"smoke": null}`},
		{"smoke", `{"smoke":false,"smoke":true}`},
		{"alarm.state", `{"alarm": {"state": "FIRE"}}`},
		{"a.0.b", `{"a": [{"b": false}]}`},
		{"smoke", `{"smoke": "\ud800"}`},
		{"smoke", "{\"smoke\": \"\xff\"}"},
		{"smoke", `{"smoke": 1e999}`},
		{"smoke", `{"smoke": -0}`},
		{"smoke|@reverse", `{"smoke": false}`},
		{"#", `[1,2]`},
		{"..0", `{"smoke": false}`},
		{"smoke", `OFF`},
		{"smoke", ``},
		{"", `OFF`},
	} {
		f.Add(s.path, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		for _, a := range []config.Alarm{
			{Topic: "t", ValueJSON: path, On: true, Off: false},
			{Topic: "t", ValueJSON: path, On: "FIRE", Off: "NORMAL"},
			{Topic: "t", ValueJSON: path, On: 1, Off: 0},
			{Topic: "t", PayloadOn: "ON", PayloadOff: "OFF"},
		} {
			m := newPayloadMatcher(a)
			got := m.match(payload)
			if again := m.match(payload); again != got {
				t.Fatalf("not deterministic: %v then %v", got, again)
			}
			if got > matchUnexpected {
				t.Fatalf("result %d out of range", got)
			}
			if len(payload) == 0 && got != matchEmpty {
				t.Fatalf("empty payload: %v", got)
			}
			if got != matchOff {
				continue
			}
			// Clear is the one result that lets a door lock: check it the
			// slow way.
			if m.path == "" {
				if string(payload) != a.PayloadOff {
					t.Fatalf("plain %q read as clear", payload)
				}
				continue
			}
			if !gjson.ValidBytes(payload) {
				t.Fatalf("invalid JSON %q read as clear", payload)
			}
			v, ok := config.AlarmValueJSON(gjson.GetBytes(payload, m.path).Value())
			off, _ := config.AlarmValueJSON(a.Off)
			if !ok || v != off {
				t.Fatalf("%q at %q read as clear: value %s, off %s", payload, m.path, v, off)
			}
			if s, isStr := a.Off.(string); isStr && !utf8.ValidString(s) {
				t.Fatalf("off not UTF-8")
			}
		}
	})
}

func TestWildcardAlarmSources(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.Expect = 2
	a.Topic = "zigbee2mqtt/+"
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	src := &l.alarms[0]
	hazard := func() bool { return l.raw.Has(HazardAlarm) }

	l.send("zigbee2mqtt/kitchen", `{"smoke": false, "battery": 90}`, true)
	if !hazard() {
		t.Fatalf("clear with 1 of 2 expected sources")
	}
	// A lamp under the same wildcard publishes other JSON: not a source.
	l.send("zigbee2mqtt/lamp", `{"state": "ON", "brightness": 120}`, true)
	l.send("zigbee2mqtt/plug", `not json`, false)
	l.send("zigbee2mqtt/gone", ``, false)
	if len(src.values) != 1 || !hazard() {
		t.Fatalf("other devices counted as sources: %v", src.values)
	}
	l.send("zigbee2mqtt/hall", `{"smoke": false}`, true)
	if hazard() {
		t.Fatalf("alarm with every source clear: %v", src.values)
	}
	// A source that loses its value is unknown: alarm, but no latch.
	l.send("zigbee2mqtt/hall", `{"battery": 12}`, false)
	if !hazard() || l.latched {
		t.Fatalf("source without its value: hazard %v, latched %v", hazard(), l.latched)
	}
	if got := src.describe(); !strings.Contains(got, "zigbee2mqtt/hall=unknown") {
		t.Fatalf("describe = %q", got)
	}
	l.send("zigbee2mqtt/hall", `{"smoke": false}`, false)
	if hazard() {
		t.Fatalf("alarm after the value came back")
	}
	// Fire on one device: alarm and latch.
	l.send("zigbee2mqtt/kitchen", `{"smoke": true, "battery": 90}`, false)
	if !hazard() || !l.latched {
		t.Fatalf("smoke: hazard %v, latched %v", hazard(), l.latched)
	}
	// A new connection (onConnected) forgets every source.
	src.reset()
	if len(src.values) != 0 || !src.active() {
		t.Fatalf("sources kept across connections: %v", src.values)
	}
}

func TestPlainWildcardCountsEveryTopic(t *testing.T) {
	l, _ := newTestLoop(t, withAlarms(config.Alarm{Topic: "home/smoke/+", PayloadOn: "ON", PayloadOff: "OFF"}), evaluated())
	l.send("home/smoke/a", "OFF", true)
	if l.raw.Has(HazardAlarm) {
		t.Fatalf("alarm with the one source clear")
	}
	l.send("home/smoke/b", "maybe", false)
	if !l.raw.Has(HazardAlarm) {
		t.Fatalf("an unexpected payload on a new topic is not alarm")
	}
}

func TestAvailabilityIsOffline(t *testing.T) {
	for p, want := range map[string]bool{
		"offline": true, `{"state":"offline"}`: true, `{"state": "offline", "x": 1}`: true,
		"online": false, `{"state":"online"}`: false, "": false, "Offline": false, `{"state": true}`: false, `{"state":`: false,
	} {
		if got := isOffline([]byte(p), "offline"); got != want {
			t.Errorf("isOffline(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestAvailabilityPerSource(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/+/availability"
	a.AvailabilityOffline = config.DefaultAvailabilityOffline
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	supervision := func() bool { return l.raw.Has(HazardAlarmSupervision) }

	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	if !supervision() {
		t.Fatalf("a source that has not said it is online is supervised")
	}
	l.send("zigbee2mqtt/kitchen/availability", `{"state":"online"}`, true)
	if supervision() || l.raw.Any() {
		t.Fatalf("hazards %v with the only source clear and online", l.raw)
	}
	// A lamp going offline is none of the alarm's business.
	l.send("zigbee2mqtt/lamp/availability", "offline", true)
	l.send("zigbee2mqtt/lamp", `{"state": "OFF"}`, true)
	if supervision() {
		t.Fatalf("a device that is not a source raised alarm_supervision")
	}
	l.send("zigbee2mqtt/kitchen/availability", "offline", true)
	if !supervision() || l.latched {
		t.Fatalf("offline source: supervision %v, latched %v", supervision(), l.latched)
	}
	// With several troubled sources the reason is stable (logged once).
	l.send("zigbee2mqtt/attic", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/attic/availability", "offline", true)
	for range 20 {
		if why := l.alarms[0].supervision(time.Time{}); why != "offline on zigbee2mqtt/attic/availability" {
			t.Fatalf("supervision reason %q", why)
		}
	}
	l.send("zigbee2mqtt/attic/availability", "online", true)
	l.send("zigbee2mqtt/kitchen/availability", "online", true)
	if supervision() {
		t.Fatalf("supervision after online")
	}

	f := false
	a.AvailabilityIsTrouble = &f
	l, _ = newTestLoop(t, withAlarms(a), evaluated())
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/kitchen/availability", "offline", true)
	if l.raw.Any() {
		t.Fatalf("availability_is_trouble: false still raised %v", l.raw)
	}
}

func TestAlarmHeartbeatSupervision(t *testing.T) {
	a := config.DefaultAlarm("db")
	a.HeartbeatTopic, a.HeartbeatTimeout = "ha/doorbridge/heartbeat", 2*time.Second
	l, clk := newTestLoop(t, withAlarms(a), evaluated())
	supervision := func() bool { return l.raw.Has(HazardAlarmSupervision) }
	l.send(a.Topic, "OFF", true)
	if !supervision() {
		t.Fatalf("a source with no heartbeat yet is supervised")
	}
	l.send(a.HeartbeatTopic, "1", true)
	if !supervision() {
		t.Fatalf("a retained heartbeat proved the source alive")
	}
	l.send(a.HeartbeatTopic, "2", false)
	if supervision() {
		t.Fatalf("alarm_supervision after a live heartbeat")
	}
	clk.t = clk.t.Add(a.HeartbeatTimeout)
	l.link() // the bridge's own link stays proven
	l.evaluate("test")
	if supervision() {
		t.Fatalf("alarm_supervision at exactly heartbeat_timeout")
	}
	clk.t = clk.t.Add(time.Millisecond)
	l.link()
	l.evaluate("test")
	if !supervision() || l.latched {
		t.Fatalf("silent heartbeat: supervision %v, latched %v", supervision(), l.latched)
	}
	if !l.effective.Has(HazardAlarmSupervision) {
		t.Fatalf("the policy does not see alarm_supervision: %v", l.effective)
	}
	l.send(a.HeartbeatTopic, "3", false)
	if supervision() {
		t.Fatalf("alarm_supervision after heartbeats resumed")
	}
	// The relock delay holds it as for any hazard.
	if !l.effective.Has(HazardAlarmSupervision) {
		t.Fatalf("alarm_supervision not held for relock_delay: %v", l.effective)
	}
	// Without a proven link, the broker hazard speaks, not supervision.
	clk.t = clk.t.Add(10 * time.Second)
	l.evaluate("test")
	if supervision() || !l.raw.Has(HazardBroker) {
		t.Fatalf("stale link: raw hazards %v, want broker only", l.raw)
	}
}

// One availability topic without + covers the whole entry: Zigbee2MQTT's
// own state, for every detector behind it.
func TestAvailabilityForWholeEntry(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/bridge/state"
	a.AvailabilityOffline = config.DefaultAvailabilityOffline
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/bridge/state", `{"state":"online"}`, true)
	if l.raw.Any() {
		t.Fatalf("hazards %v with Zigbee2MQTT online and the detector clear", l.raw)
	}
	l.send("zigbee2mqtt/bridge/state", `{"state":"offline"}`, true)
	if !l.raw.Has(HazardAlarmSupervision) {
		t.Fatalf("Zigbee2MQTT offline did not raise alarm_supervision: %v", l.raw)
	}
	l.send("zigbee2mqtt/bridge/state", ``, false) // retained state cleared: unknown
	if !l.raw.Has(HazardAlarmSupervision) {
		t.Fatalf("unknown availability is not trouble")
	}
}

// Home Assistant's own status topic, which the bridge also watches for
// republishing, can be the availability of the alarm that HA publishes.
func TestHAStatusAsAvailability(t *testing.T) {
	a := config.DefaultAlarm("db")
	a.AvailabilityTopic, a.AvailabilityOffline = "homeassistant/status", config.DefaultAvailabilityOffline
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	l.send(a.Topic, "OFF", true)
	l.send("homeassistant/status", "online", true)
	if l.raw.Any() {
		t.Fatalf("hazards %v with HA online and the alarm clear", l.raw)
	}
	l.send("homeassistant/status", "offline", false)
	if !l.raw.Has(HazardAlarmSupervision) {
		t.Fatalf("HA offline did not raise alarm_supervision: %v", l.raw)
	}
}
