package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeTestDoorConfig writes a config with a fail-safe door "fs" whose relay
// and inputs are on a sim driver with a state file and an inputs file.
func writeTestDoorConfig(t *testing.T, mqttURL string) (cfgPath, state, inputs string) {
	t.Helper()
	dir := t.TempDir()
	state, inputs = filepath.Join(dir, "relays.json"), filepath.Join(dir, "inputs.json")
	if err := sim.WriteFileAtomic(inputs, []byte(`{"c": false, "r": false, "s": false}`)); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`bridge: {id: bin, state_dir: %q}
mqtt: {url: %q, base_topic: db}
drivers:
  - {id: sim, type: sim, state_file: %q, inputs_file: %q}
doors:
  - id: fs
    name: Fire exit
    fail_mode: fail_safe
    relay: {driver: sim, channel: "0"}
    contact: {driver: sim, channel: c}
    rex: {driver: sim, channel: r}
    lock_sense: {driver: sim, channel: s}
`, filepath.Join(dir, "state"), mqttURL, state, inputs)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, state, inputs
}

// runTestDoor runs test-door in process on a goroutine with a scripted
// stdin; the returned function waits for its exit code.
func runTestDoor(stdin string, args ...string) (stdout, stderr *syncBuffer, exit func() int) {
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(append([]string{"test-door"}, args...), strings.NewReader(stdin), stdout, stderr) }()
	return stdout, stderr, func() int {
		select {
		case code := <-done:
			return code
		case <-time.After(wait):
			return -1
		}
	}
}

// An installer says yes to every step: the door is described, the relay
// pulses on and back off, inputs show live as they change, and the relay
// ends off.
func TestTestDoorWalkthrough(t *testing.T) {
	br := testbroker.Start(t) // no bridge online: nothing retained
	cfgPath, state, inputs := writeTestDoorConfig(t, br.URL())
	out, errOut, exit := runTestDoor("y\ny\ny\n", "-c", cfgPath, "-pulse", "1s", "-watch", "2s", "fs")

	testbroker.Eventually(t, wait, func() bool { return readRelays(t, state)["0"] }, "the pulse powers the relay")
	testbroker.Eventually(t, wait, func() bool { return strings.Contains(out.String(), "Watching inputs for 2s") }, "live view")
	if readRelays(t, state)["0"] {
		t.Fatalf("relay still on after the pulse")
	}
	if err := sim.WriteFileAtomic(inputs, []byte(`{"c": true, "r": true, "s": false}`)); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, wait, func() bool {
		s := out.String()
		return strings.Contains(s, "door OPEN") && strings.Contains(s, "exit button PRESSED")
	}, "inputs shown live")
	if code := exit(); code != 0 {
		t.Fatalf("test-door exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	s := out.String()
	for _, want := range []string{`Door "fs" (Fire exit): fail_safe`, "maglock", "lock power ON:  door LOCKED: the maglock holds",
		"lock power OFF: door UNLOCKED", "input contact", "door closed", "lock sensed unlocked",
		"Lock power ON", "Lock power OFF", "Left with lock power OFF (the safe state)"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if r := readRelays(t, state); r["0"] || len(r) != 1 {
		t.Fatalf("relays after test-door = %v, want the relay off", r)
	}
}

// Answering no (or nothing at all) changes nothing; the relay stays off.
func TestTestDoorNoSteps(t *testing.T) {
	br := testbroker.Start(t)
	cfgPath, state, _ := writeTestDoorConfig(t, br.URL())
	out, errOut, exit := runTestDoor("n\n", "-c", cfgPath, "fs")
	if code := exit(); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out.String(), "Lock power ON") || readRelays(t, state)["0"] {
		t.Fatalf("the relay was powered without a yes:\n%s", out)
	}
}

// test-door refuses to touch a relay that a running bridge owns.
func TestTestDoorRefusesWhileBridgeOnline(t *testing.T) {
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "bridge-stand-in")
	c.Publish("db/bin/availability", "online", true)
	cfgPath, state, _ := writeTestDoorConfig(t, br.URL())
	out, errOut, exit := runTestDoor("y\ny\ny\n", "-c", cfgPath, "fs")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), `a bridge with id "bin" is online`) {
		t.Fatalf("exit %d, want 1 and a refusal naming the bridge:\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatalf("the relay was opened although a bridge is online")
	}
	// offline (the last will of a stopped bridge): allowed.
	c.Publish("db/bin/availability", "offline", true)
	_, errOut, exit = runTestDoor("n\n", "-c", cfgPath, "fs")
	if code := exit(); code != 0 {
		t.Fatalf("with the bridge offline: exit %d\n%s", code, errOut)
	}
}

// An unreachable broker: say so, and go on only with -force.
func TestTestDoorBrokerUnreachable(t *testing.T) {
	cfgPath, _, _ := writeTestDoorConfig(t, "tcp://"+testbroker.FreeAddr(t))
	out, errOut, exit := runTestDoor("n\n", "-c", cfgPath, "-timeout", "500ms", "fs")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), "cannot tell whether a bridge") || !strings.Contains(errOut.String(), "-force") {
		t.Fatalf("exit %d, want 1 and advice to use -force:\n%s\n%s", code, out, errOut)
	}
	out, errOut, exit = runTestDoor("n\n", "-c", cfgPath, "-timeout", "500ms", "-force", "fs")
	if code := exit(); code != 0 || !strings.Contains(out.String(), "Broker unreachable") {
		t.Fatalf("with -force: exit %d\n%s\n%s", code, out, errOut)
	}
	_, errOut, exit = runTestDoor("", "-c", cfgPath, "-force", "nosuch")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), `no door "nosuch"`) || !strings.Contains(errOut.String(), "doors: fs") {
		t.Fatalf("unknown door: exit %d\n%s", code, errOut)
	}
}

// pulseTestDoor runs the test-door binary with args, says no to the input
// listing and yes to the pulse, and returns once the pulse has powered the
// relay in the sim state file state. The process is killed when the test
// ends; exited receives its Wait's result.
func pulseTestDoor(t *testing.T, state string, args ...string) (cmd *exec.Cmd, out *syncBuffer, exited chan error) {
	t.Helper()
	cmd = exec.Command(binary, append([]string{"test-door"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	io.WriteString(stdin, "n\ny\n") // no input listing; yes to the pulse
	testbroker.Eventually(t, wait, func() bool { return readRelays(t, state)["0"] }, "the pulse powers the relay")
	return cmd, out, exited
}

// Ctrl-C, a kill, a dropped SSH session (SIGHUP), Ctrl-\ (SIGQUIT), a
// stdout that went away (SIGPIPE) or Ctrl-Z (SIGTSTP) in the middle of a
// pulse leaves the relay off (the real binary, real signals).
func TestTestDoorInterruptLeavesRelayOff(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGTSTP} {
		t.Run(sig.String(), func(t *testing.T) {
			br := testbroker.Start(t)
			cfgPath, state, _ := writeTestDoorConfig(t, br.URL())
			cmd, out, exited := pulseTestDoor(t, state, "-c", cfgPath, "-pulse", "30s", "fs")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if code := exitCode(err); code != 130 {
					t.Fatalf("exit %d after %v, want 130\n%s", code, sig, out.String())
				}
			case <-time.After(wait):
				t.Fatalf("test-door did not exit after %v\n%s", sig, out.String())
			}
			if readRelays(t, state)["0"] {
				t.Fatalf("relay left on after %v\n%s", sig, out.String())
			}
			if !strings.Contains(out.String(), "Left with lock power OFF") {
				t.Fatalf("no word about the safe state:\n%s", out.String())
			}
		})
	}
}

// flockHeld reports whether some process holds a flock on path
// (/proc/locks, read without touching the lock: a probe that took it would
// make a starting bridge refuse its state_dir).
func flockHeld(t *testing.T, path string) bool {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	// 1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF (major:minor in hex)
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			return true
		}
	}
	return false
}

// writeNoBrokerConfig writes a config with one fail-safe door "fs" on a sim
// relay (its state file: state) and a broker nobody listens on, with
// stateDir as bridge.state_dir ("": none in the file, the default).
func writeNoBrokerConfig(t *testing.T, stateDir string) (cfgPath, state string) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "relays.json")
	bridgeLine := "bridge: {id: bin}"
	if stateDir != "" {
		bridgeLine = fmt.Sprintf("bridge: {id: bin, state_dir: %q}", stateDir)
	}
	cfg := fmt.Sprintf(`%s
mqtt: {url: "tcp://%s", base_topic: db}
http: {listen: ""}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}
`, bridgeLine, testbroker.FreeAddr(t), state)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, state
}

// A bridge on this machine holds bridge.state_dir's lock while it runs:
// test-door refuses while it is held, even when the broker cannot tell (it
// is unreachable here, and -force is given), so a hidden availability or a
// slowed link cannot let it drive a relay the bridge owns. Once the bridge
// is gone, the same command goes ahead.
func TestTestDoorRefusesWhileABridgeHoldsItsStateDir(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	cfgPath, _ := writeNoBrokerConfig(t, stateDir)
	lock := filepath.Join(stateDir, ".lock")
	p := startBridge(t, cfgPath)
	testbroker.Eventually(t, wait, func() bool { return flockHeld(t, lock) }, "the bridge holds %s", lock)

	out, errOut, exit := runTestDoor("y\ny\ny\n", "-c", cfgPath, "-force", "fs")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), "a doorbridge is running on this machine") {
		t.Fatalf("exit %d, want 1 and a refusal naming the running bridge:\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out.String(), "Lock power") || strings.Contains(out.String(), "Fire exit") {
		t.Fatalf("test-door went on past the refusal:\n%s", out)
	}

	p.kill(t)
	testbroker.Eventually(t, wait, func() bool { return !flockHeld(t, lock) }, "the lock is released with the bridge")
	out, errOut, exit = runTestDoor("n\n", "-c", cfgPath, "-force", "fs")
	if code := exit(); code != 0 || !strings.Contains(out.String(), "Fire exit") {
		t.Fatalf("with the bridge gone: exit %d, want 0\n%s\n%s", code, out, errOut)
	}
}

// The service keeps an empty state_dir where systemd's StateDirectory= (or
// the Docker image) says; test-door, run from a shell, resolves it by its
// own environment to somewhere else. It looks where the service keeps it
// too, and refuses while the service holds that lock.
func TestTestDoorFindsTheServiceBridgeFromAShell(t *testing.T) {
	svc := filepath.Join(t.TempDir(), "var-lib-doorbridge")
	saved := serviceStateDirs
	serviceStateDirs = []string{"/nonexistent/doorbridge-test", svc}
	t.Cleanup(func() { serviceStateDirs = saved })
	t.Setenv("STATE_DIRECTORY", "")         // the installer's shell
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // its own default, not the real $HOME
	cfgPath, _ := writeNoBrokerConfig(t, "")
	startBridgeEnv(t, cfgPath, "STATE_DIRECTORY="+svc) // the service
	lock := filepath.Join(svc, ".lock")
	testbroker.Eventually(t, wait, func() bool { return flockHeld(t, lock) }, "the service holds %s", lock)

	out, errOut, exit := runTestDoor("y\ny\ny\n", "-c", cfgPath, "-force", "fs")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), "a doorbridge is running on this machine") || !strings.Contains(errOut.String(), lock) {
		t.Fatalf("exit %d, want 1 and a refusal naming %s:\n%s\n%s", code, lock, out, errOut)
	}
	if strings.Contains(out.String(), "Lock power") {
		t.Fatalf("test-door went on past the refusal:\n%s", out)
	}
}

// On a machine where no bridge has run yet (a state_dir without a lock
// file), test-door makes the lock file and holds it: a bridge started in
// the middle of a pulse (a package's postinst, a restart policy) stops
// instead of running beside it.
func TestABridgeStartedUnderTestDoorStops(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath, state := writeNoBrokerConfig(t, stateDir)
	td, out, tdExited := pulseTestDoor(t, state, "-c", cfgPath, "-force", "-pulse", "30s", "fs")
	if !flockHeld(t, filepath.Join(stateDir, ".lock")) {
		t.Fatalf("test-door holds no lock on %s\n%s", stateDir, out.String())
	}

	p := startBridge(t, cfgPath)
	select {
	case err := <-p.exited:
		p.exited <- err
		if code := exitCode(err); code == 0 || !strings.Contains(p.output(), "in use by another doorbridge") {
			t.Fatalf("the bridge exited %d; want a refusal naming the lock:\n%s", code, p.output())
		}
	case <-time.After(wait):
		t.Fatalf("a bridge started under test-door's pulse is still running after %v", wait)
	}

	if err := td.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tdExited:
	case <-time.After(wait):
		t.Fatalf("test-door did not exit after SIGINT\n%s", out.String())
	}
	if readRelays(t, state)["0"] {
		t.Fatalf("relay left on\n%s", out.String())
	}
}
