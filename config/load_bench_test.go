package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchConfig writes a config with n doors on the sim driver, the shape
// doorbench starts (cmd/doorbench/bridgeproc.go).
func benchConfig(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "bridge: {id: bench, name: doorbench, state_dir: %q}\n", dir)
	b.WriteString("mqtt: {url: \"tcp://127.0.0.1:1883\", base_topic: db}\n")
	b.WriteString("watchdog: {heartbeat_interval: 1s, heartbeat_timeout: 3s, relock_delay: 200ms}\n")
	b.WriteString("alarms: [{topic: db/alarm, payload_on: \"ON\", payload_off: \"OFF\"}]\n")
	fmt.Fprintf(&b, "drivers: [{id: sim, type: sim, state_file: %q}]\n", filepath.Join(dir, "relays.json"))
	b.WriteString("doors:\n")
	for i := range n {
		mode := "fail_secure"
		if i%2 == 0 {
			mode = "fail_safe"
		}
		fmt.Fprintf(&b, "  - {id: d%03d, name: Door %d, fail_mode: %s, relay: {driver: sim, channel: \"%d\"}, unlock_time: 2s}\n", i, i, mode, i)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkLoad64Doors is the config load that stands between exec and the
// relays' off writes at start.
func BenchmarkLoad64Doors(b *testing.B) {
	path := benchConfig(b, 64)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad256Doors: the same at 256 doors.
func BenchmarkLoad256Doors(b *testing.B) {
	path := benchConfig(b, 256)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad4Doors: the same at 4 doors.
func BenchmarkLoad4Doors(b *testing.B) {
	path := benchConfig(b, 4)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
