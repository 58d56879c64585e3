package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// plainMosquitto is a real mosquitto without authentication.
func plainMosquitto(t *testing.T) *testbroker.Mosquitto {
	return testbroker.StartMosquitto(t, []string{"mqtt"}, func(m *testbroker.Mosquitto) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n", m.Port("mqtt"))
	})
}

// mqtt.urls with two real brokers: when the first dies, the fail-safe door
// is released at once; the bridge connects to the second, proves the link
// there with a heartbeat, and still holds the door released, because what
// the alarm source said came through the dead broker. It relocks only once
// the alarm is clear on the new broker.
func TestFailoverToSecondBroker(t *testing.T) {
	b1, b2 := plainMosquitto(t), plainMosquitto(t)
	url1, url2 := "tcp://"+b1.Addr("mqtt"), "tcp://"+b2.Addr("mqtt")
	w1 := testbroker.Connect(t, url1, "watcher1")
	w2 := testbroker.Connect(t, url2, "watcher2")
	cfg := testConfig("")
	cfg.MQTT.URLs = []string{url1, url2}
	w1.Publish(cfg.Alarms[0].Topic, "OFF", true)

	l := runLinked(t, cfg)
	l.waitPower("0", true, wait, "locked through the first broker")
	w1.WaitPayload("db/t1/fs/state", StateLocked, wait)
	if n := len(w2.Messages("db/t1/availability")); n != 0 {
		t.Fatalf("the second broker got %d availability messages while the first was up", n)
	}

	killed := time.Now()
	b1.Kill()
	l.waitPower("0", false, time.Second, "the first broker died: released within 1 s")
	t.Logf("released %v after the first broker was killed", time.Since(killed).Round(time.Millisecond))

	// On the second broker: online, heartbeat round trip, link healthy...
	w2.WaitPayload("db/t1/availability", "online", wait)
	w2.WaitFor("db/t1/heartbeat", wait, nil)
	testbroker.Eventually(t, wait, l.connected, "link proven on the second broker")
	// ...but the alarm source has said nothing on this connection: still
	// released, for the alarm, not the broker.
	w2.Sync(wait)
	if l.power("0") {
		t.Fatal("relocked on the new broker before the alarm source reported clear there")
	}
	if hz := l.b.State().Hazards; !slices.Contains(hz, HazardAlarm.String()) || slices.Contains(hz, HazardBroker.String()) {
		t.Fatalf("hazards on the second broker = %v, want alarm (unknown) and no broker", hz)
	}

	w2.Publish(cfg.Alarms[0].Topic, "OFF", true)
	l.waitPower("0", true, wait, "relocked once the alarm is clear on the new broker")
	w2.WaitPayload("db/t1/fs/state", StateLocked, wait)

	// The broker hazard was cleared only after the heartbeat round trip on
	// the second connection.
	lines := l.log.all()
	healthy := lastIndex(lines, "MQTT link healthy")
	cleared := lastIndex(lines, "hazard cleared", `hazard="broker"`)
	if healthy < 0 || cleared < healthy {
		t.Errorf("broker hazard cleared at log line %d, link proven at line %d; want the proof first", cleared, healthy)
	}
}

func lastIndex(lines []string, parts ...string) int {
	for i := len(lines) - 1; i >= 0; i-- {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(lines[i], p)
		}
		if ok {
			return i
		}
	}
	return -1
}

// Each broker's own reason is logged, once, even when paho tries them all
// in one attempt and reports only the last: here the first refuses the
// login (seen in its CONNACK) and the second is not there at all.
func TestBrokerRefusalsExplainedPerBroker(t *testing.T) {
	m := testbroker.StartMosquitto(t, []string{"mqtt"}, func(m *testbroker.Mosquitto) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\n",
			m.Port("mqtt"), testbroker.PasswordFile(t, m.Dir(), map[string]string{"doorbridge": "right"}))
	})
	gone := testbroker.FreeAddr(t) // nothing listens there
	cfg := testConfig("")
	cfg.MQTT.URLs = []string{"tcp://" + m.Addr("mqtt"), "tcp://" + gone}
	cfg.MQTT.Username, cfg.MQTT.Password = "doorbridge", "wrong"
	l := runLinked(t, cfg)
	l.log.waitCount(t, 6, "DEBUG", "MQTT connection attempt failed") // three rounds over both brokers
	for _, want := range [][]string{
		{"broker=\"tcp://" + m.Addr("mqtt") + "\"", "the broker refused the login (not Authorized): check mqtt.username and mqtt.password_file"},
		{"broker=\"tcp://" + gone + "\"", "connection refused: no broker listening at that address"},
	} {
		if n := l.log.count(append([]string{"ERROR", "MQTT broker unreachable"}, want...)...); n != 1 {
			t.Errorf("%d error lines with %q, want 1", n, want)
		}
	}
	if n := l.log.count("ERROR", "MQTT broker unreachable"); n != 2 {
		t.Errorf("%d 'unreachable' lines, want 2 (one per broker)", n)
	}
	if l.power("0") || l.connected() {
		t.Error("no broker would have the bridge, yet the fail-safe door is powered or the link is up")
	}
}

// A first broker that goes silent (its link stops forwarding, the TCP
// connection stays open): the fail-safe door is released at
// heartbeat_timeout, and the bridge drops the silent connection and moves to
// the second broker instead of waiting for paho's keepalive.
func TestFailoverFromSilentBroker(t *testing.T) {
	b1, b2 := plainMosquitto(t), plainMosquitto(t)
	proxy := testbroker.NewProxy(t, b1.Addr("mqtt"))
	url2 := "tcp://" + b2.Addr("mqtt")
	w1 := testbroker.Connect(t, "tcp://"+b1.Addr("mqtt"), "watcher1")
	w2 := testbroker.Connect(t, url2, "watcher2")
	cfg := testConfig("")
	cfg.MQTT.URLs = []string{proxy.URL(), url2}
	w1.Publish(cfg.Alarms[0].Topic, "OFF", true)
	w2.Publish(cfg.Alarms[0].Topic, "OFF", true)

	l := runLinked(t, cfg)
	l.waitPower("0", true, wait, "locked through the first broker")
	proxy.Pause()
	l.waitPower("0", false, wait, "the first broker went silent: released")
	l.log.waitCount(t, 1, "WARN", "MQTT link silent: dropping the connection")
	w2.WaitPayload("db/t1/availability", "online", 2*wait)
	l.waitPower("0", true, 2*wait, "relocked through the second broker")
}
