package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Every relay starts off, and stays off until the link is proven and the
// alarm has said clear; then fail-safe doors lock (power on) and fail-secure
// doors stay locked (power off).
func TestStartupAllOffUntilAlarmClear(t *testing.T) {
	h := newHarness(t, nil)
	for _, ch := range []string{"0", "1"} {
		if hist := h.sim.History(ch); len(hist) == 0 || hist[0] {
			t.Fatalf("relay %s: first level %v, want off", ch, hist)
		}
	}
	// Connected and subscribed, but no alarm value yet: released.
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)
	if h.power("0") || h.power("1") {
		t.Fatalf("a lock is powered before the alarm said clear")
	}
	h.c.WaitPayload(h.topic("fs", "state"), StateUnlocked, wait)
	h.c.WaitPayload("db/t1/availability", "online", wait)
	h.ready()
	if !h.b.Ready() {
		t.Fatalf("bridge not ready after start")
	}
}

func TestCommandRoundTrips(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()

	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateUnlocked, wait)
	if !h.power("1") {
		t.Fatalf("fail-secure door UNLOCKED but its strike is not powered")
	}
	h.c.Publish(h.topic("fsec", "set"), `{"action": "LOCK"}`, false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)
	if h.power("1") {
		t.Fatalf("fail-secure door LOCKED but its strike is powered")
	}

	h.c.Publish(h.topic("fs", "set"), "UNLOCK", false)
	h.c.WaitPayload(h.topic("fs", "state"), StateUnlocked, wait)
	if h.power("0") {
		t.Fatalf("fail-safe door UNLOCKED but its maglock is powered")
	}
	h.c.Publish(h.topic("fs", "set"), "LOCK", false)
	h.c.WaitPayload(h.topic("fs", "state"), StateLocked, wait)

	// A momentary OPEN unlocks for unlock_time (1 s), then locks again.
	// Timed from before the command is sent, never from the OPEN state's
	// arrival: that message can reach the test late (a busy machine) while
	// LOCKED does not, and the bridge cannot act before it gets the command.
	mark, sent := h.c.Mark(), time.Now()
	h.c.Publish(h.topic("fsec", "set"), "OPEN", false)
	h.c.WaitForAfter(mark, h.topic("fsec", "state"), wait, payloadIs(StateOpen))
	if !h.power("1") {
		t.Fatalf("OPEN did not power the strike")
	}
	locked := h.c.WaitForAfter(mark, h.topic("fsec", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(sent); d < 900*time.Millisecond {
		t.Fatalf("momentary OPEN lasted %v, want about unlock_time (1s)", d)
	}
	h.c.WaitForAfter(mark, h.topic("fsec", "event"), wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"opened"`) && !m.Retained
	})
	if got := testutil.ToFloat64(h.b.m.commands.WithLabelValues("fsec", "accepted")); got != 3 {
		t.Fatalf("accepted commands for fsec = %v, want 3", got)
	}
}

func payloadIs(p string) func(testbroker.Message) bool {
	return func(m testbroker.Message) bool { return string(m.Payload) == p }
}

func TestBadCommandsChangeNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	bad := []string{"unlock", "PLEASE", `{"action": "UNLOCK", "extra": 1}`, `{"action": "FLY"}`, `{`, strings.Repeat("U", 2000),
		`{"action": "UNLOCK", "ts": 1000}`}
	for _, p := range bad {
		mark := h.c.Mark()
		h.c.Publish(h.topic("fsec", "set"), p, false)
		h.c.WaitForAfter(mark, h.topic("fsec", "error"), wait, nil)
	}
	if h.power("1") || h.door("fsec").State != StateLocked {
		t.Fatalf("a rejected command changed the door")
	}
	if got := testutil.ToFloat64(h.b.m.commands.WithLabelValues("fsec", "rejected")); got != float64(len(bad)) {
		t.Fatalf("rejected = %v, want %d", got, len(bad))
	}
	mark := h.c.Mark()
	h.c.Publish("db/t1/nosuchdoor/set", "UNLOCK", false)
	m := h.c.WaitForAfter(mark, "db/t1/error", wait, nil)
	if !strings.Contains(string(m.Payload), "unknown door") {
		t.Fatalf("error for unknown door: %s", m.Payload)
	}
}

// A retained UNLOCK must not unlock the door when the bridge (re)subscribes.
func TestRetainedCommandIgnored(t *testing.T) {
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "setup")
	c.Publish("db/t1/fsec/set", "UNLOCK", true)
	c.Publish("db/alarm", "OFF", true)
	h := &harness{t: t, broker: br, c: c, cfg: testConfig(br.URL())}
	h.start()
	h.ready()
	testbroker.Eventually(t, wait, func() bool {
		return testutil.ToFloat64(h.b.m.commands.WithLabelValues("fsec", "ignored")) == 1
	}, "retained command counted as ignored")
	if h.power("1") || h.door("fsec").State != StateLocked {
		t.Fatalf("retained UNLOCK unlocked the fail-secure door")
	}
}

func TestAlarmReleasesFailSafeHoldsFailSecure(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked by command")

	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "alarm releases the maglock")
	h.waitPower("1", false, wait, "alarm cuts the strike's power: locked")
	h.c.WaitPayload(h.topic("fs", "state"), StateUnlocked, wait)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)
	h.c.WaitPayload("db/t1/alarm/state", "ON", wait)
	h.c.WaitFor(h.topic("fs", "event"), wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), "released_by_hazard")
	})

	// Commands that would power a lock are refused; UNLOCK of a fail-safe door is accepted.
	mark := h.c.Mark()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	m := h.c.WaitForAfter(mark, h.topic("fsec", "error"), wait, nil)
	if !strings.Contains(string(m.Payload), "refused") {
		t.Fatalf("UNLOCK of fail-secure door during alarm: %s", m.Payload)
	}
	h.c.Publish(h.topic("fs", "set"), "LOCK", false)
	h.c.WaitForAfter(mark, h.topic("fs", "error"), wait, nil)
	h.c.Publish(h.topic("fs", "set"), "UNLOCK", false)
	testbroker.Eventually(t, wait, func() bool {
		return testutil.ToFloat64(h.b.m.commands.WithLabelValues("fs", "accepted")) == 1
	}, "UNLOCK of the fail-safe door accepted during the alarm")
	mark = h.c.Mark()
	h.c.Publish("db/t1/lockdown/set", "ON", false)
	h.c.WaitForAfter(mark, "db/t1/error", wait, nil)
	if h.power("0") || h.power("1") {
		t.Fatalf("a lock was powered during the alarm")
	}
}

// An alarm already retained on the broker when the bridge starts keeps the
// fail-safe door released from the first moment.
func TestRetainedAlarmAtStart(t *testing.T) {
	br := testbroker.Start(t)
	c := testbroker.Connect(t, br.URL(), "setup")
	c.Publish("db/alarm", "ON", true)
	h := &harness{t: t, broker: br, c: c, cfg: testConfig(br.URL())}
	h.start()
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)
	testbroker.Eventually(t, wait, h.b.Ready, "bridge ready")
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)
	for _, ch := range []string{"0", "1"} {
		for _, lvl := range h.sim.History(ch) {
			if lvl {
				t.Fatalf("relay %s was powered with the alarm retained ON", ch)
			}
		}
	}
}

func TestAlarmLatchAndReset(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "alarm releases")
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)

	// A reset while the alarm is active is refused and says why.
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	m := h.c.WaitFor("db/t1/notice", wait, func(m testbroker.Message) bool {
		return strings.HasPrefix(string(m.Payload), "reset refused")
	})
	if !strings.Contains(string(m.Payload), "db/alarm") {
		t.Fatalf("refusal does not name the active alarm: %s", m.Payload)
	}

	// Alarm clear: still released (latched).
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.WaitPayload("db/t1/alarm/state", "OFF", wait)
	h.c.Sync(wait)
	// Give the relock delay every chance to (wrongly) relock: wait on a
	// condition that must not happen, bounded by 3x relock_delay.
	deadline := time.Now().Add(3 * testRelockDelay)
	for time.Now().Before(deadline) {
		if h.power("0") {
			t.Fatalf("door relocked without a reset while latched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)

	// Reset: relocks after relock_delay.
	// Timed from before the reset is sent (not from the latch's OFF, which
	// may reach the test late): the bridge cannot act on it earlier.
	mark, sent := h.c.Mark(), time.Now()
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.c.WaitForAfter(mark, "db/t1/alarm/latched", wait, payloadIs("OFF"))
	h.waitPower("0", true, wait, "relock after reset")
	locked := h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(sent); d < testRelockDelay-50*time.Millisecond {
		t.Fatalf("relocked %v after reset, before relock_delay %v", d, testRelockDelay)
	}
	h.c.WaitForAfter(mark, h.topic("fs", "event"), wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"relocked"`)
	})
}

func TestAlarmWithoutLatchRelocksAfterDelay(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = false })
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "alarm releases")
	// Timed from before the clear is sent (not from the alarm state's OFF,
	// which may reach the test late): the bridge cannot act on it earlier.
	mark, sent := h.c.Mark(), time.Now()
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.WaitForAfter(mark, "db/t1/alarm/state", wait, payloadIs("OFF"))
	locked := h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(sent); d < testRelockDelay-50*time.Millisecond {
		t.Fatalf("relocked %v after the alarm cleared, before relock_delay %v", d, testRelockDelay)
	}
	if got := h.c.Messages("db/t1/alarm/latched"); len(got) > 0 && string(got[len(got)-1].Payload) == "ON" {
		t.Fatalf("latch set with alarm_latch: false")
	}
}

func TestUnknownAlarmPayloadReleases(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.alarmTopic(), "on", true) // wrong case: not "ON", not "OFF"
	h.waitPower("0", false, wait, "an unexpected payload counts as alarm")
	h.c.WaitPayload("db/t1/alarm/state", "ON", wait)
}

// With two alarm sources, one that never reported keeps doors released.
func TestMissingAlarmStateKeepsReleased(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Alarms = append(c.Alarms, config.Alarm{Topic: "fire/panel", PayloadOn: "FIRE", PayloadOff: "NORMAL"})
	})
	h.c.Publish(h.alarmTopic(), "OFF", true)
	testbroker.Eventually(t, wait, h.b.Ready, "bridge ready")
	h.c.WaitPayload("db/t1/alarm/state", "ON", wait)
	h.c.Sync(wait)
	if h.power("0") {
		t.Fatalf("fail-safe door locked while an alarm source never reported")
	}
	h.c.Publish("fire/panel", "NORMAL", true)
	h.waitPower("0", true, wait, "locks once every source said clear")
}

func TestBrokerKilledReleases(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked")
	h.broker.Kill()
	h.waitPower("0", false, wait, "broker loss releases the maglock")
	h.waitPower("1", false, wait, "broker loss cuts the strike: locked")
	h.waitHazard("broker")
	h.broker.Restart()
	// The restarted broker has no retained alarm: doors stay released until
	// the alarm says clear again, and the outage shows as the cause.
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", 2*wait)
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, 2*wait, "relocks after the broker returns")
	// Without hazards a door follows its last command again: the strike
	// was UNLOCKED before the outage.
	h.waitPower("1", true, wait, "fail-secure door back to its last command")
}

func TestSilentLinkReleases(t *testing.T) {
	br := testbroker.Start(t)
	proxy := testbroker.NewProxy(t, br.Addr())
	c := testbroker.Connect(t, br.URL(), "watcher")
	h := &harness{t: t, broker: br, c: c, cfg: testConfig(proxy.URL())}
	h.start()
	h.ready()
	proxy.Pause()
	h.waitPower("0", false, wait, "a silent link releases after heartbeat_timeout")
	h.waitHazard("broker")
	proxy.Resume()
	h.waitPower("0", true, 4*wait, "relocks after the link recovers")
}

func TestLatchSurvivesRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.WaitPayload("db/t1/alarm/state", "OFF", wait)
	h.stop()

	h.start() // a new process: only the retained latch remembers
	testbroker.Eventually(t, wait, h.b.Ready, "restarted bridge ready")
	testbroker.Eventually(t, wait, func() bool { return h.b.State().Latched }, "latch restored")
	if h.power("0") {
		t.Fatalf("restarted bridge locked a latched door")
	}
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.waitPower("0", true, wait, "relocks after reset")
}

func TestLatchOnDisk(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *config.Config) { c.Bridge.StateDir = dir })
	h.ready()
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)
	h.stop()
	b, err := Open(h.cfg, Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close) // opened, never run: its relay writers stop
	if !b.latchOnDisk() {
		t.Fatalf("latch not kept in %s", dir)
	}
}

func TestLockdown(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.c.Publish(h.topic("fs", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked")
	h.waitPower("0", false, wait, "maglock unlocked")
	h.c.Publish("db/t1/lockdown/set", "ON", false)
	h.c.WaitPayload("db/t1/lockdown/state", "ON", wait)
	h.waitPower("1", false, wait, "lockdown locks the strike")
	h.waitPower("0", true, wait, "lockdown locks the maglock")
	h.c.WaitPayload(h.topic("fs", "cause"), "lockdown", wait)
	// Hazards still release fail-safe doors during lockdown.
	h.c.Publish(h.alarmTopic(), "ON", true)
	h.waitPower("0", false, wait, "the alarm releases the maglock despite lockdown")
}

func TestPowerHazardReleases(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	h.b.ReportPower("ups", true, "OB")
	h.waitPower("0", false, wait, "mains lost releases")
	h.c.WaitPayload("db/t1/power/state", "OFF", wait)
	h.b.ReportPower("ups", false, "OL")
	h.waitPower("0", true, wait, "relocks when mains return")
	h.c.WaitPayload("db/t1/power/state", "ON", wait)
}

// The in-process watchdog forces relays off when the loop stops responding.
func TestWatchdogForcesOffWhenLoopHangs(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	release := make(chan struct{})
	h.b.events <- evFunc(func(*loop) { <-release })
	h.waitPower("0", false, wait, "watchdog turns the maglock off while the loop hangs")
	if h.b.Healthy() {
		t.Fatalf("Healthy() while the loop hangs")
	}
	close(release)
	h.c.WaitPayload(h.topic("fs", "cause"), "watchdog", wait)
	h.waitPower("0", true, wait, "relocks once the loop is healthy again")
	if got := testutil.ToFloat64(h.b.m.hazardsRaised.WithLabelValues("watchdog")); got < 1 {
		t.Fatalf("watchdog trips = %v", got)
	}
}

func TestAttributesAndAPI(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	m := h.c.WaitFor(h.topic("fsec", "attributes"), wait, nil)
	var attrs map[string]any
	if err := json.Unmarshal(m.Payload, &attrs); err != nil {
		t.Fatalf("attributes not JSON: %s", m.Payload)
	}
	for _, k := range []string{"fail_mode", "energized", "hazards"} {
		if _, ok := attrs[k]; !ok {
			t.Fatalf("attributes lack %q: %s", k, m.Payload)
		}
	}
	if attrs["fail_mode"] != "fail_secure" {
		t.Fatalf("fail_mode = %v", attrs["fail_mode"])
	}
}
