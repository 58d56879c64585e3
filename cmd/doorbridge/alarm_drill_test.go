package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func writeAlarmConfig(t *testing.T, url, alarms string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`bridge: {id: bin}
mqtt: {url: %q, base_topic: db}
alarms:
%s
drivers: [{id: sim, type: sim}]
doors: [{id: fs, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`, url, alarms)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A drill publishes to the first plain alarm entry, never to a Zigbee2MQTT
// wildcard read from devices; without a plain entry it says so.
func TestAlarmDrillSkipsDeviceEntries(t *testing.T) {
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "watcher")
	zigbee := `  - {topic: zigbee2mqtt/+, value_json: smoke, "on": true, "off": false}`
	path := writeAlarmConfig(t, br.URL(), zigbee+"\n  - {topic: db/alarm}")
	if out, err := exec.Command(binary, "alarm", "on", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("doorbridge alarm on: %v\n%s", err, out)
	}
	c.WaitPayload("db/alarm", "ON", wait)

	path = writeAlarmConfig(t, br.URL(), zigbee)
	out, err := exec.Command(binary, "alarm", "on", "-c", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no alarm entry has a plain topic") {
		t.Fatalf("alarm on with only a device entry: %v\n%s", err, out)
	}
}
