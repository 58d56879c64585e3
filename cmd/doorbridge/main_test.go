package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// binary is the doorbridge binary built from the tree for black-box tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doorbridge-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "doorbridge")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building doorbridge: %v\n%s", err, out)
		os.Exit(1)
	}
	// test-door looks for a running service's lock where the service
	// keeps it (/var/lib/doorbridge, /data): never on the test machine's.
	serviceStateDirs = nil
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const wait = 10 * time.Second

// writeConfig writes a two-door config using the sim driver's state file.
func writeConfig(t *testing.T, mqttURL, embedded, httpListen string) (cfgPath, stateFile string) {
	t.Helper()
	dir := t.TempDir()
	stateFile = filepath.Join(dir, "relays.json")
	cfg := fmt.Sprintf(`bridge: {id: bin, name: Binary test}
mqtt: {url: %q, base_topic: db}
embedded_broker: {listen: %q}
http: {listen: %q}
watchdog: {heartbeat_interval: 100ms, heartbeat_timeout: 500ms, relock_delay: 200ms}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
  - {id: fsec, name: Store, fail_mode: fail_secure, relay: {driver: sim, channel: "1"}}
`, mqttURL, embedded, httpListen, stateFile)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, stateFile
}

func readRelays(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m map[string]bool
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("state file %s: %v", path, err)
	}
	return m
}

type proc struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan error
}

// startBridge runs the bridge on cfgPath. Its state directory (a config
// without state_dir takes $STATE_DIRECTORY) is beside the config: each test
// has its own, and a restart of the same config finds its state again.
func startBridge(t *testing.T, cfgPath string) *proc {
	t.Helper()
	return startBridgeEnv(t, cfgPath, "STATE_DIRECTORY="+filepath.Join(filepath.Dir(cfgPath), "state"))
}

// startBridgeEnv runs the bridge with env added to the test's environment.
func startBridgeEnv(t *testing.T, cfgPath string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "run", "-c", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &out, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("doorbridge output:\n%s", p.output())
		}
	})
	return p
}

// kill kills the process and waits (boundedly) for it to be reaped.
func (p *proc) kill(t *testing.T) {
	p.cmd.Process.Kill()
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(wait):
		t.Errorf("doorbridge (pid %d) not reaped within %v of SIGKILL", p.cmd.Process.Pid, wait)
	}
}

// output is what the process wrote so far. cmd.Wait is the only writer
// once it returned; before, the copy may still be filling the buffer.
func (p *proc) output() string {
	select {
	case err := <-p.exited:
		p.exited <- err
		return p.out.String()
	default:
		return "(still running: output not read)"
	}
}

func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for Cleanup, which waits for the exit too
		if err != nil {
			t.Fatalf("doorbridge exited with %v after %v; its output:\n%s", err, sig, p.output())
		}
	case <-time.After(wait):
		t.Fatalf("doorbridge did not exit within %v of %v; its output:\n%s", wait, sig, p.output())
	}
}

// SIGTERM leaves every relay off (read from the sim state file) and
// publishes offline, retained.
func TestSIGTERMLeavesRelaysOffAndPublishesOffline(t *testing.T) {
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "watcher")
	cfgPath, state := writeConfig(t, br.URL(), "127.0.0.1:1883", "")
	c.Publish("db/alarm", "OFF", true)
	p := startBridge(t, cfgPath)
	c.WaitPayload("db/bin/availability", "online", wait)
	c.WaitPayload("db/bin/fs/state", "LOCKED", wait)
	c.Publish("db/bin/fsec/set", "UNLOCK", false)
	c.WaitPayload("db/bin/fsec/state", "UNLOCKED", wait)
	if r := readRelays(t, state); !r["0"] || !r["1"] {
		t.Fatalf("relays before SIGTERM = %v, want both powered", r)
	}
	p.stop(t, syscall.SIGTERM)
	if r := readRelays(t, state); r["0"] || r["1"] || len(r) != 2 {
		t.Fatalf("relays after SIGTERM = %v, want every relay off", r)
	}
	late := testbroker.Connect(t, br.URL(), "late")
	m := late.WaitFor("db/bin/availability", wait, nil)
	if string(m.Payload) != "offline" || !m.Retained {
		t.Fatalf("availability after SIGTERM: %s", m)
	}
}

// The README's first command: the embedded broker and simulated relays.
func TestEmbeddedBrokerDemoFlow(t *testing.T) {
	brokerAddr, httpAddr := testbroker.FreeAddr(t), testbroker.FreeAddr(t)
	cfgPath, state := writeConfig(t, "", brokerAddr, httpAddr)
	p := startBridge(t, cfgPath)
	testbroker.Eventually(t, wait, func() bool {
		conn, err := net.Dial("tcp", brokerAddr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, "embedded broker listening on %s", brokerAddr)
	c := testbroker.Connect(t, "tcp://"+brokerAddr, "watcher")

	// Not ready to lock: no alarm value yet. healthcheck still succeeds
	// once connected (ready means connected and past start-up).
	c.WaitPayload("db/bin/fs/cause", "alarm", wait)
	if out, err := exec.Command(binary, "alarm", "off", "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("doorbridge alarm off: %v\n%s", err, out)
	}
	c.WaitPayload("db/bin/fs/state", "LOCKED", wait)
	if r := readRelays(t, state); !r["0"] || r["1"] {
		t.Fatalf("relays = %v, want the maglock powered and the strike not", r)
	}
	if out, err := exec.Command(binary, "healthcheck", "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("healthcheck: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "alarm", "on", "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("doorbridge alarm on: %v\n%s", err, out)
	}
	c.WaitPayload("db/bin/fs/state", "UNLOCKED", wait)
	c.WaitPayload("db/bin/fsec/state", "LOCKED", wait)
	p.stop(t, syscall.SIGINT)
	if r := readRelays(t, state); r["0"] || r["1"] {
		t.Fatalf("relays after SIGINT = %v", r)
	}
}

func TestCheckConfig(t *testing.T) {
	cfgPath, _ := writeConfig(t, "tcp://127.0.0.1:1883", "127.0.0.1:1883", "")
	out, err := exec.Command(binary, "check-config", "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config on a valid config: %v\n%s", err, out)
	}
	for _, want := range []string{"fs", "fail_safe", "unlocks", "fsec", "fail_secure", "stays locked", "BROKER LOST", "POWER LOST", "FIRE ALARM", "State: /"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("doors:\n  - {id: x, fail_mode: fail_open, relay: {driver: sim, channel: \"0\"}}\ndrivers: [{id: sim, type: sim}]\n"), 0o600)
	out, err = exec.Command(binary, "check-config", "-c", bad).CombinedOutput()
	if code := exitCode(err); code != 1 || !bytes.Contains(out, []byte(bad+": doors.x.fail_mode")) {
		t.Fatalf("check-config on an invalid config: exit %d, want 1 and an error naming file and key:\n%s", code, out)
	}
}

func TestHashCode(t *testing.T) {
	cmd := exec.Command(binary, "hash-code")
	cmd.Stdin = strings.NewReader("2468\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword(bytes.TrimSpace(out), []byte("2468")); err != nil {
		t.Fatalf("hash-code output %q does not match the code: %v", out, err)
	}
	cmd = exec.Command(binary, "hash-code")
	cmd.Stdin = strings.NewReader("12ab\n")
	if err := cmd.Run(); err == nil {
		t.Fatalf("hash-code accepted a non-digit code")
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "doorbridge ") {
		t.Fatalf("version: %q %v", out, err)
	}
	if !strings.Contains(string(out), "(commit ") {
		t.Errorf("version = %q, want the commit it was built from", out)
	}
	// The stamp scripts/build-release.sh and the Dockerfile put in.
	stamped := filepath.Join(t.TempDir(), "doorbridge")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9 -X main.commit=0123abcd", "-o", stamped, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	if out, err := exec.Command(stamped, "version").Output(); err != nil || string(out) != "doorbridge v9.9.9 (commit 0123abcd)\n" {
		t.Errorf("stamped version = %q %v, want \"doorbridge v9.9.9 (commit 0123abcd)\"", out, err)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
