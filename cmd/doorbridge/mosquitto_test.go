package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// exampleMosquitto starts mosquitto on configs/mosquitto/mosquitto.conf and
// its acl, as shipped: only the ports, the file paths and the log
// destination are swapped for the test's. A "watcher" user that may read
// everything (and write only testbroker/ sync markers) is appended to the
// acl for the test's own observer.
func exampleMosquitto(t *testing.T, users map[string]string, extraACL ...string) (*testbroker.Mosquitto, *testbroker.PKI) {
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
		testACL := string(acl) + "\n# test only\nuser watcher\ntopic read #\ntopic write testbroker/#\n" + strings.Join(extraACL, "\n")
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

	// Home Assistant cannot pose as the bridge.
	mark, since := watcher.Mark(), time.Now()
	if tok := ha.Paho().Publish("doorbridge/bin/fs/state", 1, false, "UNLOCKED"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("ha publish: %v", tok.Error())
	}
	ha.Publish("doorbridge/bin/republish", "PRESS", false)
	watcher.WaitForAfter(mark, "doorbridge/bin/republish", wait, nil)
	if msg, ok := receivedSince(watcher, since, "doorbridge/bin/fs/state", "UNLOCKED"); ok {
		t.Errorf("Home Assistant published a door state: %s", msg)
	}

	// The bridge's own login cannot command a door: the publication is
	// dropped, and its next one (allowed) arrives without it. (It does take
	// the bridge's connection over: use_username_as_clientid makes its
	// client id "doorbridge" too. It leaves at once, or the two would take
	// it from each other for ever.)
	mark, since = watcher.Mark(), time.Now()
	impostorPublishes(t, plain, pw["doorbridge"], "doorbridge/bin/fsec/set", "LOCK")
	watcher.WaitForAfter(mark, "doorbridge/bin/notice", wait, func(m testbroker.Message) bool { return string(m.Payload) == "marker" })
	if msg, ok := receivedSince(watcher, since, "doorbridge/bin/fsec/set", "LOCK"); ok {
		t.Errorf("the bridge's user published a command: %s", msg)
	}
	// The bridge is back, and relocks the maglock it released meanwhile.
	watcher.WaitForAfter(mark, "doorbridge/bin/availability", wait, func(m testbroker.Message) bool { return string(m.Payload) == "online" })
	watcher.Sync(wait)
	watcher.WaitPayload("doorbridge/bin/fs/state", "LOCKED", wait)

	// A drill under the bridge's own login is dropped by mosquitto (it
	// acknowledges and logs "Denied PUBLISH"): the command must fail and
	// say how to log in instead, never print a success. (Its login takes
	// the bridge's connection over for a moment, like the impostor's.)
	for _, action := range []string{"on", "reset"} {
		out, err := quickCommand("alarm", action, "-c", cfgPath, "-timeout", "2s").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "NOT PUBLISHED") || !strings.Contains(string(out), "-password-file") {
			t.Errorf("alarm %s as the bridge's user (denied by the acl): %v, want a non-zero exit naming the acl and -username/-password-file:\n%s", action, err, out)
		}
	}
	if got := watcher.Messages("doorbridge/bin/alarm/state"); len(got) > 0 && string(got[len(got)-1].Payload) != "OFF" {
		t.Fatalf("the denied drill changed the alarm state: %v", got)
	}
	testbroker.Eventually(t, wait, func() bool {
		a, s := watcher.Messages("doorbridge/bin/availability"), watcher.Messages("doorbridge/bin/fs/state")
		return len(a) > 0 && string(a[len(a)-1].Payload) == "online" && len(s) > 0 && string(s[len(s)-1].Payload) == "LOCKED"
	}, "the bridge back online with the maglock locked after the denied drill")

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
	// (Client ids are user names: the impostor's denied command is the only
	// denied publication from "doorbridge".)
	watcher.Sync(wait)
	out := m.Output()
	for _, l := range strings.Split(grepLines(out, "Denied PUBLISH from doorbridge "), "\n") {
		// The impostor's command and the drill under the bridge's login.
		if l != "" && !strings.Contains(l, "'doorbridge/bin/fsec/set'") && !strings.Contains(l, "'doorbridge/alarm'") && !strings.Contains(l, "alarm/reset'") {
			t.Errorf("the example acl denied one of the bridge's publications: %s", l)
		}
	}
	for _, want := range []string{"Denied PUBLISH from doorbridge (", "Denied PUBLISH from homeassistant ("} {
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

// On the example config a client's id is its user name
// (use_username_as_clientid): Home Assistant or the CLI user connecting
// with the bridge's client id, as often as it likes, does not cut the
// bridge's connection (on 43e9a8a each such login did, releasing every
// maglock; one every 1.5 s kept them released).
func TestExampleMosquittoBindsClientIDsToUsers(t *testing.T) {
	pw := map[string]string{"doorbridge": "bridge-pw-1", "homeassistant": "ha-pw-2", "doorbridge-cli": "cli-pw-3", "watcher": "watch-pw-4"}
	m, _ := exampleMosquitto(t, pw)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "bridge-password")
	if err := os.WriteFile(pwFile, []byte(pw["doorbridge"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "relays.json")
	cfgPath := filepath.Join(dir, "config.yaml")
	plain := "tcp://" + m.Addr("mqtt")
	cfg := fmt.Sprintf(`bridge: {id: bin}
mqtt: {url: %s, username: doorbridge, password_file: %s}
http: {listen: ""}
watchdog: {heartbeat_interval: 100ms, heartbeat_timeout: 500ms, relock_delay: 200ms}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
`, plain, pwFile, state)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	watcher := testbroker.ConnectWith(t, plain, "watcher", testbroker.ClientOptions{Username: "watcher", Password: pw["watcher"]})
	startBridge(t, cfgPath)
	ha := testbroker.ConnectWith(t, plain, "home-assistant", testbroker.ClientOptions{Username: "homeassistant", Password: pw["homeassistant"]})
	ha.Publish("doorbridge/alarm", "OFF", true)
	watcher.WaitPayload("doorbridge/bin/fs/state", "LOCKED", wait)
	since := time.Now()

	for i := range 5 {
		for _, user := range []string{"homeassistant", "doorbridge-cli"} {
			if err := testbroker.TryConnect(plain, "doorbridge-bin", testbroker.ClientOptions{Username: user, Password: pw[user]}); err != nil {
				t.Fatalf("round %d: %s with the bridge's client id: %v (want let in, under its own id)", i, user, err)
			}
		}
	}
	ha.Publish("doorbridge/bin/republish", "PRESS", false)
	watcher.Sync(wait)
	if msg, ok := receivedSince(watcher, since, "doorbridge/bin/availability", "offline"); ok {
		t.Errorf("the bridge lost its connection to a login with its client id: %s", msg)
	}
	if r := readRelays(t, state); !r["0"] {
		t.Errorf("relays = %v: the maglock was released by logins with the bridge's client id", r)
	}
	// A packet beyond max_packet_size (1 MiB) is cut on its header, before
	// any login: 5 bytes no longer make mosquitto wait for 256 MB.
	raw, err := net.Dial("tcp", m.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(wait))
	if _, err := raw.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a CONNECT declaring 256 MB was not cut at once: %v", err)
	}
	// mosquitto 2.0 reads use_username_as_clientid per listener, and
	// ignores it before the first: every listener of both shipped configs
	// sets it (the TLS one is not exercised above).
	for _, path := range []string{"configs/mosquitto/mosquitto.conf", "configs/docker/mosquitto.conf"} {
		text, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		// The memory bounds (started above for configs/mosquitto, the
		// same lines in the container's).
		for _, want := range []string{"\nmax_queued_messages 1000\n", "\nmax_queued_bytes 16777216\n", "\nmemory_limit 268435456\n"} {
			if !strings.Contains(string(text), want) {
				t.Errorf("%s lacks %q", path, strings.TrimSpace(want))
			}
		}
		blocks := strings.Split(string(text), "\nlistener ")
		for _, b := range blocks[1:] {
			if !strings.Contains(b, "\nuse_username_as_clientid true\n") {
				t.Errorf("%s: listener %s lacks use_username_as_clientid true", path, strings.SplitN(b, "\n", 2)[0])
			}
		}
	}
	if out := m.Output(); strings.Contains(out, "Client doorbridge-bin already connected") {
		t.Errorf("mosquitto took the bridge's session over:\n%s", grepLines(out, "already connected"))
	}
}

// On the shipped mosquitto config test-door's online check, which logs in
// as mqtt.username, takes the running bridge's connection over (a client's
// id is its user name): the broker publishes the bridge's will, "offline".
// test-door must not take that for a stopped bridge: the bridge takes the
// connection back, and test-door refuses.
func TestTestDoorRefusesRunningBridgeOnExampleMosquitto(t *testing.T) {
	pw := map[string]string{"doorbridge": "bridge-pw-1", "homeassistant": "ha-pw-2", "doorbridge-cli": "cli-pw-3", "watcher": "watch-pw-4"}
	m, _ := exampleMosquitto(t, pw)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "bridge-password")
	if err := os.WriteFile(pwFile, []byte(pw["doorbridge"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	plain := "tcp://" + m.Addr("mqtt")
	cfg := fmt.Sprintf(`bridge: {id: bin}
mqtt: {url: %s, username: doorbridge, password_file: %s}
http: {listen: ""}
drivers:
  - {id: sim, type: sim, state_file: %q}
doors:
  - {id: fs, name: Fire exit, fail_mode: fail_safe, relay: {driver: sim, channel: "0"}, egress: true}
`, plain, pwFile, filepath.Join(dir, "relays.json"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	watcher := testbroker.ConnectWith(t, plain, "watcher", testbroker.ClientOptions{Username: "watcher", Password: pw["watcher"]})
	startBridge(t, cfgPath)
	watcher.WaitPayload("doorbridge/bin/availability", "online", wait)
	out, errOut, exit := runTestDoor("n\n", "-c", cfgPath, "fs")
	if code := exit(); code != 1 || !strings.Contains(errOut.String(), `a bridge with id "bin" is online`) {
		t.Fatalf("exit %d, want 1 and a refusal naming the running bridge:\n%s\n%s", code, out, errOut)
	}
}

// impostorPublishes logs in as the bridge's user (which takes the bridge's
// connection over), publishes payload to topic at QoS 1 and a "marker"
// notice, and leaves. The bridge may take the connection back before the
// publications are through: it tries again, a few times.
func impostorPublishes(t *testing.T, url, password, topic, payload string) {
	t.Helper()
	var err error
	for range 5 {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("impostor").SetUsername("doorbridge").
			SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait).
			SetWriteTimeout(2 * time.Second)) // the bridge taking the session back mid-publish: see connectOnce
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			err = tok.Error()
			continue
		}
		for _, p := range [][2]string{{topic, payload}, {"doorbridge/bin/notice", "marker"}} {
			if tok := c.Publish(p[0], 1, false, p[1]); !tok.WaitTimeout(wait) || tok.Error() != nil {
				err = fmt.Errorf("publish %s: %v", p[0], tok.Error())
				break
			}
			err = nil
		}
		c.Disconnect(100)
		if err == nil {
			return
		}
	}
	t.Fatalf("the impostor could not publish: %v", err)
}
