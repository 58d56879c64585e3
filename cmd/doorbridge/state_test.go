package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// R23 (issue 11 item 4), black-box: the demo's setup (embedded broker, no
// state_dir in the config) run by hand. The latch survives a restart of
// the process, whose fresh embedded broker has nothing retained: alarm OFF
// does not relock; RESET does. The state is under $HOME.
func TestEmbeddedLatchSurvivesRestart(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "STATE_DIRECTORY=", "XDG_STATE_HOME="}
	brokerAddr := testbroker.FreeAddr(t)
	cfgPath, state := writeConfig(t, "", brokerAddr, "")
	cli := func(args ...string) {
		t.Helper()
		cmd := exec.Command(binary, append(args, "-c", cfgPath)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("doorbridge %v: %v\n%s", args, err, out)
		}
	}
	connect := func(name string) *testbroker.Client {
		testbroker.Eventually(t, wait, func() bool { return dialOK(brokerAddr) }, "embedded broker listening on %s", brokerAddr)
		return testbroker.Connect(t, "tcp://"+brokerAddr, name)
	}

	p := startBridgeEnv(t, cfgPath, env...)
	c := connect("watcher")
	cli("alarm", "off")
	c.WaitPayload("db/bin/fs/state", "LOCKED", wait)
	cli("alarm", "on")
	c.WaitPayload("db/bin/alarm/latched", "ON", wait)
	c.Close()
	p.stop(t, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(home, ".local", "state", "doorbridge", "bin", "alarm_latched")); err != nil {
		t.Fatalf("no latch record under $HOME: %v", err)
	}

	startBridgeEnv(t, cfgPath, env...)
	c = connect("watcher2")
	cli("alarm", "off") // retained on the new broker: the alarm is over
	c.WaitPayload("db/bin/alarm/state", "OFF", wait)
	c.WaitPayload("db/bin/alarm/latched", "ON", wait)
	c.WaitPayload("db/bin/fs/cause", "alarm", wait)
	if r := readRelays(t, state); r["0"] {
		t.Fatalf("relays %v: the restarted bridge locked a latched maglock", r)
	}
	cli("alarm", "reset")
	c.WaitPayload("db/bin/fs/state", "LOCKED", wait)
}

func dialOK(addr string) bool {
	conn, err := net.Dial("tcp", addr)
	if err == nil {
		conn.Close()
	}
	return err == nil
}
