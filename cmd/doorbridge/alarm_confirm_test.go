package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// alarmCLI runs doorbridge alarm with args and returns its output and
// whether it exited 0.
func alarmCLI(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	out, err := quickCommand(append([]string{"alarm"}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// The bridge's own state is the proof, not the broker passing the message
// back: a reset the bridge refuses (alarm still ON) fails with its reason;
// `off` while latched says a reset is needed; a drill on a topic the bridge
// does not read (the broker passes it back all the same) fails; a stopped
// bridge confirms nothing.
func TestAlarmConfirmedByTheBridge(t *testing.T) {
	dir := t.TempDir()
	addr := testbroker.FreeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	text := fmt.Sprintf(`bridge: {id: bin}
embedded_broker: {listen: %q}
http: {listen: ""}
drivers: [{id: sim, type: sim, state_file: %q}]
doors: [{id: fs, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`, addr, filepath.Join(dir, "relays.json"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	startBridge(t, cfg)
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+addr, "probe", testbroker.ClientOptions{}) == nil
	}, "the embedded broker did not come up")
	w := testbroker.Connect(t, "tcp://"+addr, "watcher")
	w.WaitPayload("doorbridge/bin/availability", "online", wait)

	step := func(wantOK bool, wants []string, args ...string) {
		t.Helper()
		out, ok := alarmCLI(t, append(args, "-c", cfg, "-timeout", "10s")...)
		if ok != wantOK {
			t.Errorf("alarm %s: exit 0 = %v, want %v:\n%s", strings.Join(args, " "), ok, wantOK, out)
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("alarm %s: output lacks %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
	step(true, []string{"the bridge confirmed: doorbridge/bin/alarm/state reads OFF"}, "off")
	step(true, []string{"the bridge confirmed: doorbridge/bin/alarm/state reads ON"}, "on")
	w.WaitPayload("doorbridge/bin/alarm/latched", "ON", wait)
	step(false, []string{"the bridge REFUSED the reset: reset refused: alarm still active"}, "reset")
	step(true, []string{"reads OFF", "still latched: run doorbridge alarm reset"}, "off")
	step(true, []string{"the bridge released the latch"}, "reset")
	w.WaitPayload("doorbridge/bin/alarm/latched", "OFF", wait)

	// The broker passes this back, but the bridge reads doorbridge/alarm.
	step(false, []string{"the bridge did NOT confirm", "doorbridge/bin/alarm/state still reads OFF"}, "on", "-topic", "elsewhere/alarm")
}
