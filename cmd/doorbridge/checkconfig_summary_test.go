package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config lists the alarm and power sources, and its POWER LOST
// column tells a power_release: false door from one that unlocks.
func TestCheckConfigSourcesAndPowerLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := `bridge: {id: home}
alarms:
  - {topic: doorbridge/alarm, heartbeat_topic: doorbridge/ha/heartbeat, heartbeat_timeout: 6s}
power:
  - {type: nut, name: ups, host: 127.0.0.1, port: 3493, ups: ups}
drivers: [{id: sim, type: sim}]
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, power_release: false}
  - {id: back, fail_mode: fail_safe, relay: {driver: sim, channel: "1"}}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if code := run([]string{"check-config", "-skip-files", "-c", path}, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("check-config: exit %d\n%s", code, out.String())
	}
	for _, want := range []string{
		"Alarm: doorbridge/alarm (OFF = clear, ON or anything else = alarm); heartbeat doorbridge/ha/heartbeat within 6s",
		`Power: ups (nut: UPS "ups" on upsd 127.0.0.1:3493, mains lost on OB or LB); unread for 5s counts as lost`,
		"stays locked on battery up to 10m0s, then unlocks",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check-config lacks %q:\n%s", want, out.String())
		}
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "back ") && strings.Count(l, "unlocks (maglock released)") != 3 {
			t.Errorf("back (power_release default) should unlock on every hazard: %q", l)
		}
	}
}

// A wildcard alarm entry without expect or sources cannot notice a detector
// that never reports: check-config says so (review 12 F1: a retained fire
// lost on the broker went unnoticed under such an entry).
func TestCheckConfigWarnsWildcardAlarmWithoutExpect(t *testing.T) {
	for _, tc := range []struct {
		entry string
		warns bool
	}{
		{`{topic: "zigbee2mqtt/+", value_json: smoke, on: true, off: false}`, true},
		{`{topic: "zigbee2mqtt/+", value_json: smoke, on: true, off: false, expect: 3}`, false},
		{`{topic: doorbridge/alarm}`, false},
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		cfg := "bridge: {id: home}\nalarms:\n  - " + tc.entry + `
drivers: [{id: sim, type: sim}]
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}
`
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if code := run([]string{"check-config", "-skip-files", "-c", path}, strings.NewReader(""), &out, &out); code != 0 {
			t.Fatalf("%s: check-config: exit %d\n%s", tc.entry, code, out.String())
		}
		if got := strings.Contains(out.String(), "neither expect nor sources"); got != tc.warns {
			t.Errorf("%s: warned %v, want %v\n%s", tc.entry, got, tc.warns, out.String())
		}
	}
}
