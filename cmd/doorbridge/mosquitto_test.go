package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// exampleMosquitto starts mosquitto on configs/mosquitto/mosquitto.conf and
// its acl, as shipped: only the ports, the file paths and the log
// destination are swapped for the test's. A "watcher" user that may read
// everything (and write only testbroker/ sync markers) is appended to the
// acl for the test's own observer.
func exampleMosquitto(t *testing.T, users map[string]string) (*testbroker.Mosquitto, *testbroker.PKI) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join("..", "..", "configs", "mosquitto", "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	acl, err := os.ReadFile(filepath.Join("..", "..", "configs", "mosquitto", "acl"))
	if err != nil {
		t.Fatal(err)
	}
	pki := testbroker.NewPKI(t, "site CA")
	cert, key := pki.ServerCert("server")
	return testbroker.StartMosquitto(t, []string{"mqtt", "tls"}, func(m *testbroker.Mosquitto) string {
		aclPath := filepath.Join(m.Dir(), "acl")
		testACL := string(acl) + "\n# test only\nuser watcher\ntopic read #\ntopic write testbroker/#\n"
		if err := os.WriteFile(aclPath, []byte(testACL), 0o600); err != nil {
			t.Fatal(err)
		}
		text := string(conf)
		for _, r := range [][2]string{
			{"password_file /etc/mosquitto/passwd", "password_file " + testbroker.PasswordFile(t, m.Dir(), users)},
			{"acl_file /etc/mosquitto/acl", "acl_file " + aclPath},
			{"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", m.Port("mqtt"))},
			{"listener 8883\n", fmt.Sprintf("listener %d 127.0.0.1\n", m.Port("tls"))},
			{"certfile /etc/mosquitto/certs/server.pem", "certfile " + cert},
			{"keyfile /etc/mosquitto/certs/server.key", "keyfile " + key},
			{"log_dest syslog", "log_dest stdout\nlog_type all"},
		} {
			if !strings.Contains(text, r[0]) {
				t.Fatalf("configs/mosquitto/mosquitto.conf no longer holds %q: update this test with the example", r[0])
			}
			text = strings.Replace(text, r[0], r[1], 1)
		}
		return text
	}), pki
}

// The example mosquitto config and acl: the bridge works through them (over
// their TLS listener) and none of its publications is denied; Home
// Assistant reads the state and may command, alarm and reset; the
// operator's CLI user may too; an anonymous client or a wrong password
// cannot connect; the bridge's own login cannot publish a command, and Home
// Assistant cannot publish a door's state.
func TestExampleMosquittoACL(t *testing.T) {
	pw := map[string]string{"doorbridge": "bridge-pw-1", "homeassistant": "ha-pw-2", "doorbridge-cli": "cli-pw-3", "watcher": "watch-pw-4"}
	m, pki := exampleMosquitto(t, pw)
	dir := t.TempDir()
	secret := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(pw[name]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	state := filepath.Join(dir, "relays.json")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`bridge: {id: bin}
mqtt:
  url: ssl://%s
  ca_file: %s
  username: doorbridge
  password_file: %s
http: {listen: ""}
watchdog: {heartbeat_interval: 100ms, heartbeat_timeout: 500ms, relock_delay: 200ms}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
  - {id: fsec, name: Store, fail_mode: fail_secure, relay: {driver: sim, channel: "1"}}
`, m.Addr("tls"), pki.CAFile, secret("doorbridge"), state)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.CAFile)
	roots.AppendCertsFromPEM(caPEM)
	plain, tlsURL := "tcp://"+m.Addr("mqtt"), "ssl://"+m.Addr("tls")

	watcher := testbroker.ConnectWith(t, plain, "watcher", testbroker.ClientOptions{Username: "watcher", Password: pw["watcher"]})
	startBridge(t, cfgPath)
	ha := testbroker.ConnectWith(t, tlsURL, "home-assistant", testbroker.ClientOptions{
		Username: "homeassistant", Password: pw["homeassistant"], TLS: &tls.Config{RootCAs: roots}})

	// Home Assistant clears the alarm and reads the state back.
	ha.Publish("doorbridge/alarm", "OFF", true)
	ha.WaitPayload("doorbridge/bin/fs/state", "LOCKED", wait)
	// ...and commands a door.
	ha.Publish("doorbridge/bin/fsec/set", "UNLOCK", false)
	ha.WaitPayload("doorbridge/bin/fsec/state", "UNLOCKED", wait)
	if r := readRelays(t, state); !r["0"] || !r["1"] {
		t.Fatalf("relays = %v, want the maglock locked and the strike unlocked by Home Assistant", r)
	}

	// Nobody else logs in.
	for name, o := range map[string]testbroker.ClientOptions{
		"anonymous":      {},
		"wrong password": {Username: "homeassistant", Password: "guess"},
		"unknown user":   {Username: "admin", Password: pw["homeassistant"]},
	} {
		if err := testbroker.TryConnect(plain, "intruder", o); err == nil {
			t.Errorf("%s: connected, want refused", name)
		}
	}

	// The bridge's own login cannot command a door: the publication is
	// dropped, and its next one (allowed) arrives without it.
	impostor := testbroker.ConnectWith(t, plain, "impostor", testbroker.ClientOptions{Username: "doorbridge", Password: pw["doorbridge"]})
	mark, since := watcher.Mark(), time.Now()
	if tok := impostor.Paho().Publish("doorbridge/bin/fsec/set", 1, false, "LOCK"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("impostor publish: %v", tok.Error())
	}
	impostor.Publish("doorbridge/bin/notice", "marker", false)
	watcher.WaitForAfter(mark, "doorbridge/bin/notice", wait, func(m testbroker.Message) bool { return string(m.Payload) == "marker" })
	if msg, ok := receivedSince(watcher, since, "doorbridge/bin/fsec/set", "LOCK"); ok {
		t.Errorf("the bridge's user published a command: %s", msg)
	}

	// Home Assistant cannot pose as the bridge.
	mark, since = watcher.Mark(), time.Now()
	if tok := ha.Paho().Publish("doorbridge/bin/fs/state", 1, false, "UNLOCKED"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("ha publish: %v", tok.Error())
	}
	ha.Publish("doorbridge/bin/republish", "PRESS", false)
	watcher.WaitForAfter(mark, "doorbridge/bin/republish", wait, nil)
	if msg, ok := receivedSince(watcher, since, "doorbridge/bin/fs/state", "UNLOCKED"); ok {
		t.Errorf("Home Assistant published a door state: %s", msg)
	}

	// A drill under the bridge's own login is dropped by mosquitto (it
	// acknowledges and logs "Denied PUBLISH"): the command must fail and
	// say how to log in instead, never print a success.
	for _, action := range []string{"on", "reset"} {
		out, err := quickCommand("alarm", action, "-c", cfgPath, "-timeout", "2s").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "NOT PUBLISHED") || !strings.Contains(string(out), "-password-file") {
			t.Errorf("alarm %s as the bridge's user (denied by the acl): %v, want a non-zero exit naming the acl and -username/-password-file:\n%s", action, err, out)
		}
	}
	if got := watcher.Messages("doorbridge/bin/alarm/state"); len(got) > 0 && string(got[len(got)-1].Payload) != "OFF" {
		t.Fatalf("the denied drill changed the alarm state: %v", got)
	}

	// The operator's CLI user may raise and reset the alarm.
	cli := func(args ...string) {
		t.Helper()
		args = append(args, "-c", cfgPath, "-username", "doorbridge-cli", "-password-file", secret("doorbridge-cli"))
		if out, err := quickCommand(args...).CombinedOutput(); err != nil {
			t.Fatalf("doorbridge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	cli("alarm", "on")
	watcher.WaitPayload("doorbridge/bin/fs/state", "UNLOCKED", wait)
	watcher.WaitPayload("doorbridge/bin/alarm/latched", "ON", wait)
	cli("alarm", "off")
	cli("alarm", "reset")
	watcher.WaitPayload("doorbridge/bin/alarm/latched", "OFF", wait)
	watcher.WaitPayload("doorbridge/bin/fs/state", "LOCKED", wait)

	// Everything the bridge published went through: the acl covers it.
	watcher.Sync(wait)
	out := m.Output()
	if strings.Contains(out, "Denied PUBLISH from doorbridge-bin ") {
		t.Errorf("the example acl denied some of the bridge's publications:\n%s", grepLines(out, "Denied PUBLISH from doorbridge-bin "))
	}
	for _, want := range []string{"Denied PUBLISH from impostor", "Denied PUBLISH from home-assistant", "Denied PUBLISH from doorbridge-bin-cli-"} {
		if !strings.Contains(out, want) {
			t.Errorf("mosquitto's log lacks %q", want)
		}
	}
}

// receivedSince finds a message with payload on topic that c received after since.
func receivedSince(c *testbroker.Client, since time.Time, topic, payload string) (testbroker.Message, bool) {
	for _, m := range c.Messages(topic) {
		if m.At.After(since) && string(m.Payload) == payload {
			return m, true
		}
	}
	return testbroker.Message{}, false
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
