package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// The Quick start's demo, as shipped (only its /tmp files and ports moved
// into the test's own): it starts without an ERROR line, and one line says
// what the doors are waiting for; clearing the alarm is logged at INFO.
func TestDemoStartsClean(t *testing.T) {
	cfgPath, broker := demoConfig(t)
	p := startBridge(t, cfgPath)
	var c *testbroker.Client
	testbroker.Eventually(t, wait, func() bool { return testbroker.TryConnect("tcp://"+broker, "probe", testbroker.ClientOptions{}) == nil }, "the demo's broker did not come up")
	c = testbroker.Connect(t, "tcp://"+broker, "watcher")
	c.WaitPayload("doorbridge/demo/availability", "online", wait)
	// The line comes with the first heartbeat round trip, which clears the
	// startup hazard.
	c.WaitFor("doorbridge/demo/hazards", wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), "alarm") && !strings.Contains(string(m.Payload), "startup")
	})
	// The Quick start's first step: a clear is news, not a warning.
	if b, err := quickCommand("alarm", "off", "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("alarm off: %v\n%s", err, b)
	}
	c.WaitPayload("doorbridge/demo/alarm/state", "OFF", wait)
	p.stop(t, syscall.SIGTERM)
	out := p.output()
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("the demo logged errors at start:\n%s", grepLines(out, "level=ERROR"))
	}
	if !strings.Contains(out, `level=INFO msg="alarm source changed" component=bridge topic=doorbridge/alarm from=unknown to=clear`) {
		t.Errorf("the alarm clearing was not logged once at INFO:\n%s", grepLines(out, "alarm source changed"))
	}
	if want := `msg="1 fail-safe door released until: doorbridge/alarm says OFF (now: unknown)"`; !strings.Contains(out, want) {
		t.Errorf("no start-up line says what the doors wait for (%s):\n%s", want, out)
	}
}

// demoConfig writes configs/demo.yaml into the test's directory with its
// /tmp files and ports moved there, and the replacements in more; it
// returns the config's path and the demo broker's address.
func demoConfig(t *testing.T, more ...[2]string) (cfgPath, broker string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	broker, httpAddr := testbroker.FreeAddr(t), testbroker.FreeAddr(t)
	text := string(b)
	for _, r := range append([][2]string{
		{"doorbridge-demo-relays.json", filepath.Join(dir, "relays.json")},
		{"doorbridge-demo-inputs.json", filepath.Join(dir, "inputs.json")},
		{`listen: "127.0.0.1:1883"`, `listen: "` + broker + `"`},
		{`listen: "127.0.0.1:9180"`, `listen: "` + httpAddr + `"`},
	}, more...) {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("configs/demo.yaml no longer holds %q: update this test with the demo", r[0])
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	cfgPath = filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, broker
}
