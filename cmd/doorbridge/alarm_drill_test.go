package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// A drill the broker's ACL drops is a failure, not a success: behind the
// embedded broker with users, the bridge's own login may not publish the
// alarm or a reset (the broker acknowledges and drops them), and `alarm`
// exits non-zero naming the ACL and the login flags; a user the ACL lets
// publish succeeds, and the bridge obeys.
func TestAlarmDeniedByACLFails(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("bridge-pw", "bridge-password-1\n")
	cliPW := write("cli-pw", "cli-password-2\n")
	watchPW := write("watch-pw", "watch-password-3\n")
	addr := testbroker.FreeAddr(t)
	cfg := write("config.yaml", fmt.Sprintf(`bridge: {id: bin}
mqtt: {username: doorbridge, password_file: %q}
embedded_broker:
  listen: %q
  users:
    - {username: doorbridge, password_file: %q}
    - {username: cli, password_file: %q}
    - {username: watcher, password_file: %q}
  acl:
    - {username: cli, publish: ["doorbridge/alarm", "doorbridge/+/alarm/reset"], subscribe: ["doorbridge/#"]}
    - {username: watcher, subscribe: ["#"]}
http: {listen: ""}
drivers: [{id: sim, type: sim, state_file: %q}]
doors: [{id: fs, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}}]
`, pw, addr, pw, cliPW, watchPW, filepath.Join(dir, "relays.json")))
	startBridge(t, cfg)
	var w *testbroker.Client
	testbroker.Eventually(t, wait, func() bool {
		return testbroker.TryConnect("tcp://"+addr, "probe", testbroker.ClientOptions{Username: "watcher", Password: "watch-password-3"}) == nil
	}, "the embedded broker did not come up")
	w = testbroker.ConnectWith(t, "tcp://"+addr, "watcher", testbroker.ClientOptions{Username: "watcher", Password: "watch-password-3"})
	w.WaitPayload("doorbridge/bin/availability", "online", wait)

	for _, action := range []string{"on", "off", "reset"} {
		out, err := quickCommand("alarm", action, "-c", cfg, "-timeout", "2s").CombinedOutput()
		if err == nil {
			t.Errorf("alarm %s as the bridge's user (denied by the ACL) exited 0:\n%s", action, out)
		}
		for _, want := range []string{"NOT PUBLISHED", "ACL", "user doorbridge", "-username", "-password-file"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("alarm %s denied: output lacks %q:\n%s", action, want, out)
			}
		}
		if strings.Contains(string(out), "published \"") {
			t.Errorf("alarm %s denied still claims success:\n%s", action, out)
		}
	}
	if msgs := w.Messages("doorbridge/alarm"); len(msgs) != 0 {
		t.Fatalf("the denied drill reached the broker: %v", msgs)
	}

	out, err := quickCommand("alarm", "on", "-c", cfg, "-username", "cli", "-password-file", cliPW).CombinedOutput()
	if err != nil {
		t.Fatalf("alarm on as cli: %v\n%s", err, out)
	}
	w.WaitPayload("doorbridge/bin/alarm/state", "ON", wait)
}

// Every subcommand's -h lists its flags and exits 0; a config file named
// without -c is refused (it used to be ignored, and the default config
// read instead).
func TestSubcommandHelpAndStrayArguments(t *testing.T) {
	flags := map[string][]string{
		"run":           {"-c", "-log-format", "-log-level"},
		"check-config":  {"-c", "-skip-files"},
		"alarm":         {"-c", "-topic", "-username", "-password-file", "-timeout"},
		"discovery":     {"-c"},
		"test-door":     {"-c", "-force", "-pulse", "-watch", "-timeout"},
		"hash-code":     {"stdin"},
		"hash-password": {"stdin"},
		"healthcheck":   {"-c", "-url"},
		"events":        {"-c", "-file", "-since", "-door", "-json"},
		"version":       {"no flags"},
	}
	for cmd, want := range flags {
		for _, h := range []string{"-h", "--help"} {
			var out strings.Builder
			if code := run([]string{cmd, h}, strings.NewReader(""), &out, &out); code != 0 {
				t.Errorf("doorbridge %s %s: exit %d, want 0\n%s", cmd, h, code, out.String())
			}
			for _, w := range append(want, "usage: doorbridge "+cmd) {
				if !strings.Contains(out.String(), w) {
					t.Errorf("doorbridge %s %s: lacks %q:\n%s", cmd, h, w, out.String())
				}
			}
		}
		if cmd == "test-door" || cmd == "alarm" {
			continue // they take a positional argument (DOOR, on|off|reset)
		}
		var out strings.Builder
		code := run([]string{cmd, "site.yaml"}, strings.NewReader(""), &out, &out)
		if !slices.Contains(want, "-c") {
			// No config: no hint to give it with -c.
			if code != 2 || strings.Contains(out.String(), " -c ") {
				t.Errorf("doorbridge %s site.yaml: exit %d, want 2 without a -c hint:\n%s", cmd, code, out.String())
			}
			continue
		}
		if code != 2 || !strings.Contains(out.String(), `unexpected argument "site.yaml": a config file is given with -c (doorbridge `+cmd+` -c site.yaml)`) {
			t.Errorf("doorbridge %s site.yaml: exit %d, want 2 and a hint to use -c:\n%s", cmd, code, out.String())
		}
	}
	var out strings.Builder
	if code := run([]string{"alarm", "on", "site.yaml"}, strings.NewReader(""), &out, &out); code != 2 || !strings.Contains(out.String(), "(doorbridge alarm on -c site.yaml)") {
		t.Errorf("doorbridge alarm on site.yaml: exit %d, want 2 and a hint to use -c:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"alarm", "site.yaml", "on"}, strings.NewReader(""), &out, &out); code != 2 || !strings.Contains(out.String(), "(doorbridge alarm on -c site.yaml)") {
		t.Errorf("doorbridge alarm site.yaml on: exit %d, want 2 and a hint to use -c:\n%s", code, out.String())
	}
}
