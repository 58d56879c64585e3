package config_test

import (
	"math"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
)

// A Zigbee2MQTT smoke-detector entry: JSON values keep their JSON types,
// availability gets its defaults, a plain entry keeps ON/OFF.
func TestAlarmSourceConfig(t *testing.T) {
	cfg, err := config.Parse("inline.yaml", []byte(`
alarms:
  - topic: zigbee2mqtt/+
    value_json: smoke
    "on": true
    "off": false
    expect: 3
    availability_topic: zigbee2mqtt/+/availability
  - topic: panel/fire
    value_json: state.code
    on: 2
    off: "normal"
    heartbeat_topic: panel/heartbeat
    heartbeat_timeout: 5s
    availability_topic: panel/status
    availability_offline: lost
    availability_is_trouble: false
  - topic: doorbridge/alarm
drivers: [{id: sim, type: sim}]
doors: [{id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	z, p, plain := cfg.Alarms[0], cfg.Alarms[1], cfg.Alarms[2]
	if z.On != true || z.Off != false || z.PayloadOn != "" || z.PayloadOff != "" {
		t.Errorf("zigbee entry: on %#v off %#v payloads %q/%q; want JSON true/false and no payload defaults", z.On, z.Off, z.PayloadOn, z.PayloadOff)
	}
	if z.MinSources() != 3 || z.AvailabilityOffline != "offline" || !z.AvailabilityTrouble() {
		t.Errorf("zigbee entry: expect %d, availability_offline %q, is_trouble %v", z.MinSources(), z.AvailabilityOffline, z.AvailabilityTrouble())
	}
	if on, _ := config.AlarmValueJSON(p.On); on != "2" {
		t.Errorf("on: 2 reads as %s", on)
	}
	if off, _ := config.AlarmValueJSON(p.Off); off != `"normal"` {
		t.Errorf(`off: "normal" reads as %s`, off)
	}
	if p.HeartbeatTimeout != 5*time.Second || p.AvailabilityOffline != "lost" || p.AvailabilityTrouble() || p.MinSources() != 1 {
		t.Errorf("panel entry: %+v", p)
	}
	if plain.PayloadOn != "ON" || plain.PayloadOff != "OFF" || plain.AvailabilityOffline != "" {
		t.Errorf("plain entry: %+v", plain)
	}
}

// The values on and off are compared as JSON: types matter, number
// formatting does not.
func TestAlarmValueJSON(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
		ok   bool
	}{
		{true, "true", true}, {false, "false", true},
		{"true", `"true"`, true}, {"a\"b", `"a\"b"`, true},
		{1, "1", true}, {int64(1), "1", true}, {uint8(1), "1", true}, {1.0, "1", true}, {1.5, "1.5", true},
		{float32(0.5), "0.5", true}, {math.Copysign(0, -1), "0", true}, {1e21, "1e+21", true},
		{nil, "", false}, {[]any{true}, "", false}, {map[string]any{}, "", false},
	} {
		got, ok := config.AlarmValueJSON(c.v)
		if got != c.want || ok != c.ok {
			t.Errorf("AlarmValueJSON(%#v) = %q, %v; want %q, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
