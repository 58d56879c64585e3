package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kyaml "github.com/knadh/koanf/parsers/yaml"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/doorbridge/doorbridge/power/nuttest"
)

// standIns is who publishes an alarm source's topics, by topic prefix, in
// the shipped acl: Home Assistant (doorbridge/alarm and its heartbeat),
// Zigbee2MQTT (its devices and their availability), a fire panel's gateway.
var standIns = map[string]string{
	"doorbridge/":  "homeassistant",
	"zigbee2mqtt/": "zigbee2mqtt",
	"building/":    "fire-panel",
}

// Every example config runs against the shipped mosquitto config and acl
// (configs/mosquitto), with stand-ins for Home Assistant, Zigbee2MQTT and a
// fire panel logging in as the users the acl names: once every alarm source
// says clear, the fail-safe doors lock; each source's alarm releases them
// and leaves the fail-secure doors locked; clear and reset lock them again.
// An example with a NUT power source gets a real upsd (nuttest): on battery
// releases the doors that release on power loss and no other; back on line
// relocks them. Nothing anyone publishes is denied. Only the hardware is swapped (sim
// relays), and the files and timings that would make the test slow.
func TestExamplesWithShippedMosquitto(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join("..", "..", "configs", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) { runExample(t, path) })
	}
}

func runExample(t *testing.T, example string) {
	pw := map[string]string{"doorbridge": "bridge-pw-1", "homeassistant": "ha-pw-2", "zigbee2mqtt": "z2m-pw-3", "fire-panel": "panel-pw-4", "watcher": "watch-pw-5"}
	src, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	if src.MQTT.URL == "" && len(src.MQTT.URLs) == 0 {
		t.Skip("runs its own embedded broker: the shipped mosquitto acl does not apply")
	}
	var ups *nuttest.UPSD
	if len(src.Power) > 0 {
		ups = nuttest.Start(t)
	}
	m, _ := exampleMosquitto(t, pw)
	url := "tcp://" + m.Addr("mqtt")
	dir := t.TempDir()
	cfgPath := rewriteExample(t, example, dir, url, pw["doorbridge"], ups)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("the rewritten example no longer loads: %v", err)
	}

	watcher := testbroker.ConnectWith(t, url, "watcher", testbroker.ClientOptions{Username: "watcher", Password: pw["watcher"]})
	clients := map[string]*testbroker.Client{}
	as := func(topic string) *testbroker.Client {
		t.Helper()
		for prefix, user := range standIns {
			if strings.HasPrefix(topic, prefix) {
				if clients[user] == nil {
					clients[user] = testbroker.ConnectWith(t, url, user, testbroker.ClientOptions{Username: user, Password: pw[user]})
				}
				return clients[user]
			}
		}
		t.Fatalf("no stand-in publishes %s: give its publisher a user in configs/mosquitto/acl and in standIns", topic)
		return nil
	}
	for _, a := range cfg.Alarms {
		publishAlarm(t, as, a, false)
		if a.HeartbeatTopic != "" {
			beat(t, as(a.HeartbeatTopic), a.HeartbeatTopic, a.HeartbeatTimeout/4)
		}
	}
	p := startBridge(t, cfgPath)

	prefix := cfg.MQTT.BaseTopic + "/" + cfg.Bridge.ID
	doorsAre := func(failSafe string) {
		t.Helper()
		for _, d := range cfg.Doors {
			want := "LOCKED"
			if d.FailMode == config.FailSafe {
				want = failSafe
			}
			watcher.WaitPayload(prefix+"/"+d.ID+"/state", want, 2*wait)
		}
	}
	doorsAre("LOCKED")
	for i, a := range cfg.Alarms {
		publishAlarm(t, as, a, true)
		doorsAre("UNLOCKED")
		publishAlarm(t, as, a, false)
		as(prefix+"/alarm/reset").Publish(prefix+"/alarm/reset", "RESET", false)
		doorsAre("LOCKED")
		t.Logf("alarms[%d] %s: released the fail-safe doors and relocked after clear and reset", i, a.Topic)
	}
	if ups != nil {
		mainsLost(t, watcher, ups, cfg, prefix)
		doorsAre("LOCKED")
		p.stop(t, syscall.SIGTERM)
		// Mains lost warns; mains back (and the first reading) is a clear.
		for _, l := range strings.Split(p.output(), "\n") {
			if strings.Contains(l, `msg="power source changed"`) && strings.Contains(l, "lost=false") != strings.Contains(l, "level=INFO") {
				t.Errorf("power logged at the wrong level (want WARN for lost, INFO for ok): %s", l)
			}
		}
	}

	watcher.Sync(wait)
	for _, denied := range []string{"Denied PUBLISH", "Denied SUBSCRIBE"} {
		if out := m.Output(); strings.Contains(out, denied) {
			t.Errorf("the shipped acl denied what the example needs:\n%s", grepLines(out, denied))
		}
	}
}

// rewriteExample writes the example with only what a test must change:
// the broker (the test's mosquitto, plain), the bridge's password, sim
// relays for the hardware, files in dir, no HTTP listener or hardware
// watchdog, a short relock delay, a patient heartbeat, and ups for every
// power source.
func rewriteExample(t *testing.T, example, dir, url, password string, ups *nuttest.UPSD) string {
	t.Helper()
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kyaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	section := func(name string) map[string]any {
		s, _ := m[name].(map[string]any)
		if s == nil {
			s = map[string]any{}
			m[name] = s
		}
		return s
	}
	pwFile := filepath.Join(dir, "mqtt-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mq := section("mqtt")
	for _, k := range []string{"urls", "ca_file", "cert_file", "key_file", "password", "server_name"} {
		delete(mq, k)
	}
	mq["url"], mq["password_file"] = url, pwFile
	if mq["username"] == nil {
		mq["username"] = "doorbridge"
	}
	section("bridge")["state_dir"] = filepath.Join(dir, "state")
	section("http")["listen"] = ""
	wd := section("watchdog")
	delete(wd, "device")
	wd["relock_delay"] = "200ms"
	// The broker link's supervision at its most patient: a loaded CI
	// machine must not make a slow heartbeat look like a lost broker.
	wd["heartbeat_interval"], wd["heartbeat_timeout"] = "1s", "10s"
	if a, ok := m["audit"].(map[string]any); ok && a["file"] != nil {
		a["file"] = filepath.Join(dir, "audit.jsonl")
	}
	drivers, _ := m["drivers"].([]any)
	for i, d := range drivers {
		id := d.(map[string]any)["id"]
		drivers[i] = map[string]any{"id": id, "type": "sim", "state_file": filepath.Join(dir, fmt.Sprintf("%v.json", id))}
	}
	sources, _ := m["power"].([]any)
	for _, s := range sources {
		p := s.(map[string]any)
		if p["type"] != config.PowerNUT {
			t.Fatalf("no stand-in for a power source of type %v: add one to this test", p["type"])
		}
		p["host"], p["port"], p["ups"] = ups.Host(), ups.Port(), ups.UPS()
		delete(p, "username")
		delete(p, "password_file")
	}
	out, err := kyaml.Parser().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mainsLost puts the UPS on battery: the doors that release on power loss
// are released, a power_release: false door and a strike stay locked until
// the UPS is back on line.
func mainsLost(t *testing.T, watcher *testbroker.Client, ups *nuttest.UPSD, cfg *config.Config, prefix string) {
	t.Helper()
	watcher.WaitPayload(prefix+"/power/state", "ON", 2*wait)
	mark := watcher.Mark()
	ups.SetStatus(t, "OB")
	watcher.WaitPayload(prefix+"/power/state", "OFF", 2*wait)
	held := map[string]bool{}
	for _, d := range cfg.Doors {
		if d.FailMode == config.FailSafe && d.ReleasesOnPowerLoss() {
			watcher.WaitPayload(prefix+"/"+d.ID+"/state", "UNLOCKED", 2*wait)
		} else {
			held[prefix+"/"+d.ID+"/state"] = true
		}
	}
	ups.SetStatus(t, "OL")
	watcher.WaitPayload(prefix+"/power/state", "ON", 2*wait)
	for _, msg := range watcher.Since(mark) {
		if held[msg.Topic] && string(msg.Payload) != "LOCKED" {
			t.Errorf("on battery, %s = %q; want it held LOCKED (power_release: false, or a strike)", msg.Topic, msg.Payload)
		}
	}
	t.Logf("power: on battery released the doors that release on power loss, held %d", len(held))
}

// publishAlarm makes alarm source a say alarm (on) or clear, retained, as
// its stand-in: a plain payload, or for a Zigbee2MQTT wildcard every
// expected detector's JSON and availability (only the first raises).
func publishAlarm(t *testing.T, as func(string) *testbroker.Client, a config.Alarm, on bool) {
	t.Helper()
	if a.ValueJSON == "" {
		p := a.PayloadOff
		if on {
			p = a.PayloadOn
		}
		as(a.Topic).Publish(a.Topic, p, true)
		return
	}
	for i := 1; i <= a.MinSources(); i++ {
		name := fmt.Sprintf("detector-%d", i)
		v := a.Off
		if on && i == 1 {
			v = a.On
		}
		js, _ := json.Marshal(map[string]any{a.ValueJSON: v, "battery": 90})
		topic := strings.Replace(a.Topic, "+", name, 1)
		if a.AvailabilityTopic != "" && !on {
			avail := strings.Replace(a.AvailabilityTopic, "+", name, 1)
			as(avail).Publish(avail, `{"state":"online"}`, true)
		}
		as(topic).Publish(topic, string(js), true)
	}
}

// beat publishes a heartbeat every interval until the test ends, as Home
// Assistant's automation does.
func beat(t *testing.T, c *testbroker.Client, topic string, interval time.Duration) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); <-stopped })
	go func() {
		defer close(stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			c.Paho().Publish(topic, 0, false, "alive")
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
}
