package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

const unitFile = "../../configs/systemd/doorbridge.service"

// unitSettings reads the Key=value lines of a unit file, in order.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=value: %q", unitFile, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// The shipped unit keeps the settings the safety rules rely on (R9) and
// still reaches the devices the drivers use.
func TestSystemdUnitSettings(t *testing.T) {
	s := unitSettings(t)
	for k, want := range map[string]string{
		"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "3s", "Restart": "always", "RestartSec": "1",
		"StartLimitIntervalSec": "0", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"StateDirectory": "doorbridge", "DevicePolicy": "closed", "SupplementaryGroups": "gpio i2c dialout",
		// Not world-readable (the door codes' hashes); the OOM killer's
		// favour is bounded by a memory limit of its own.
		"ConfigurationDirectoryMode": "0750", "MemoryMax": "256M",
	} {
		if got := s[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, dev := range []string{"char-gpiochip rw", "char-i2c rw", "char-ttyUSB rw", "char-ttyAMA rw", "/dev/watchdog rw"} {
		if !slices.Contains(s["DeviceAllow"], dev) {
			t.Errorf("DeviceAllow lacks %q (have %q)", dev, s["DeviceAllow"])
		}
	}
	if exec := s["ExecStart"]; len(exec) != 1 || !strings.Contains(exec[0], "doorbridge run") {
		t.Errorf("ExecStart=%q", exec)
	}
	for _, k := range []string{"PrivateDevices", "PrivateUsers"} {
		if _, ok := s[k]; ok {
			t.Errorf("%s= would hide the GPIO devices or their group", k)
		}
	}
}

// systemd-analyze verify accepts the unit without a warning (apt-get
// install systemd to run it; skipped where it is missing).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at the one
	// the tests built.
	unit := strings.ReplaceAll(string(data), "/usr/local/bin/doorbridge", binary)
	path := filepath.Join(t.TempDir(), "doorbridge.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The real binary under a systemd-like supervisor: READY=1 once the broker
// link is proven, WATCHDOG=1 at half of $WATCHDOG_USEC, STOPPING=1 on
// SIGTERM; the hardware watchdog (a file here) pinged, then disarmed with
// 'V' after every relay is off.
func TestRunNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, strings.Split(string(buf[:n]), "\n")...)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { sock.Close() })
	count := func(state string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range got {
			if s == state {
				n++
			}
		}
		return n
	}

	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "watcher")
	cfgPath, state := writeConfig(t, br.URL(), "127.0.0.1:1883", "")
	dev := filepath.Join(dir, "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "relock_delay: 200ms}", "relock_delay: 200ms, device: "+dev+"}", 1))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Publish("db/alarm", "OFF", true)
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "400000")
	p := startBridge(t, cfgPath)
	testbroker.Eventually(t, wait, func() bool { return count("READY=1") == 1 }, "READY=1 from the binary")
	c.WaitPayload("db/bin/fs/state", "LOCKED", wait)
	testbroker.Eventually(t, wait, func() bool { return count("WATCHDOG=1") >= 2 }, "WATCHDOG=1 pings")
	testbroker.Eventually(t, wait, func() bool {
		b, _ := os.ReadFile(dev)
		return len(b) >= 2
	}, "hardware watchdog pings")
	p.stop(t, syscall.SIGTERM)
	// Sent before the process exited; the reader may not have picked it up yet.
	testbroker.Eventually(t, wait, func() bool { return count("STOPPING=1") == 1 }, "STOPPING=1 after SIGTERM")
	if b, _ := os.ReadFile(dev); !strings.HasSuffix(string(b), "V") {
		t.Errorf("watchdog device got %q, want a final magic V", b)
	}
	if r := readRelays(t, state); r["0"] || r["1"] {
		t.Errorf("relays after SIGTERM = %v", r)
	}
}
