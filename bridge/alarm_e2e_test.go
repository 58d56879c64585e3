package bridge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// End-to-end tests of alarm sources beyond ON/OFF, with a real broker
// (mosquitto with DOORBRIDGE_TEST_MOSQUITTO=1).

// zigbeeSmoke is one entry for every Zigbee2MQTT smoke detector.
func zigbeeSmoke(expect int) config.Alarm {
	return config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false, Expect: expect}
}

// waitReleased waits until the fail-safe door's lock power is off and
// returns how long that took from since.
func (h *harness) waitReleased(since time.Time, why string) time.Duration {
	h.t.Helper()
	h.waitPower("0", false, wait, why)
	return time.Since(since)
}

func (h *harness) neverLatched() {
	h.t.Helper()
	for _, m := range h.c.Messages("db/t1/alarm/latched") {
		if string(m.Payload) == "ON" {
			h.t.Fatalf("the release latched; supervision trouble must not latch")
		}
	}
}

// A Zigbee2MQTT-shaped smoke message on a wildcard topic releases the
// fail-safe door and holds the fail-secure one; every detector clear again
// leaves it latched until a reset, as for any alarm.
func TestZigbeeSmokeReleases(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Alarms = []config.Alarm{zigbeeSmoke(2)} })
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false, "battery": 90, "linkquality": 96}`, true)
	h.c.Publish("zigbee2mqtt/lamp", `{"state": "ON", "brightness": 254}`, true) // not a smoke detector
	testbroker.Eventually(t, wait, h.b.Ready, "bridge ready")
	h.c.WaitPayload("db/t1/alarm/state", "ON", wait)
	h.c.Sync(wait)
	if h.power("0") {
		t.Fatalf("locked with 1 of 2 expected detectors reported")
	}
	h.c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false, "battery": 100}`, true)
	h.waitPower("0", true, wait, "locks once both detectors said clear")
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked by command")

	start := time.Now()
	h.c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": true, "battery": 90}`, true)
	took := h.waitReleased(start, "smoke on one detector releases the maglock")
	h.waitPower("1", false, wait, "smoke cuts the strike's power: locked")
	t.Logf("zigbee smoke → fail-safe released in %v", took)
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm", wait)
	h.c.WaitPayload("db/t1/alarm/latched", "ON", wait)

	// A routine report of the other detector changes nothing.
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false, "battery": 89}`, true)
	h.c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false, "battery": 90}`, true)
	h.c.WaitPayload("db/t1/alarm/state", "OFF", wait)
	h.c.Sync(wait)
	if h.power("0") || h.power("1") {
		t.Fatalf("a lock was powered while the release is latched")
	}
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.waitPower("0", true, wait, "relocks after the reset")
	h.waitPower("1", true, wait, "fail-secure door back to its last command")
}

// Without the latch, a detector that loses its value (a message without
// "smoke") releases until it reports again.
func TestZigbeeSourceWithoutValueReleases(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Alarms = []config.Alarm{zigbeeSmoke(1)}
		c.Watchdog.AlarmLatch = false
	})
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false, "battery": 90}`, true)
	h.waitPower("0", true, wait, "locks with the detector clear")
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"battery": 90}`, false)
	h.waitPower("0", false, wait, "a detector without its value counts as alarm")
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false, "battery": 90}`, false)
	h.waitPower("0", true, wait, "relocks once it reports clear again")
}

// heartbeats publishes a heartbeat every period until stop is called; last
// is when the latest was published.
type heartbeats struct {
	stop func()
	last atomic.Int64 // unix nanoseconds
}

func startHeartbeats(t *testing.T, c *testbroker.Client, topic string, period time.Duration) *heartbeats {
	hb := &heartbeats{}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			// Not Client.Publish: it may fail the test, which only the
			// test goroutine may do. A lost heartbeat shows as a release.
			tok := c.Paho().Publish(topic, 1, false, "alive")
			tok.WaitTimeout(time.Second)
			hb.last.Store(time.Now().UnixNano())
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	}()
	var once atomic.Bool
	hb.stop = func() {
		if once.CompareAndSwap(false, true) {
			close(done)
			<-stopped
		}
	}
	t.Cleanup(hb.stop)
	return hb
}

// A silent alarm-source heartbeat releases within heartbeat_timeout + 1 s,
// like a lost broker: fail-safe released, fail-secure locked, nothing
// latched; heartbeats back relock after relock_delay.
func TestAlarmHeartbeatSilenceReleases(t *testing.T) {
	const timeout = time.Second
	h := newHarness(t, func(c *config.Config) {
		c.Alarms[0].HeartbeatTopic = "ha/doorbridge/heartbeat"
		c.Alarms[0].HeartbeatTimeout = timeout
	})
	hbClient := testbroker.Connect(t, h.broker.URL(), "ha-heartbeat")
	// Until the first heartbeat the source is unproven: released.
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitHazard(HazardAlarmSupervision.String())
	hb := startHeartbeats(t, hbClient, "ha/doorbridge/heartbeat", 200*time.Millisecond)
	h.ready()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	h.waitPower("1", true, wait, "strike unlocked by command")

	hb.stop()
	last := time.Unix(0, hb.last.Load())
	took := h.waitReleased(last, "a silent alarm heartbeat releases the maglock")
	h.waitPower("1", false, wait, "the strike's power is cut: locked")
	t.Logf("alarm heartbeat silent → fail-safe released %v after the last heartbeat (heartbeat_timeout %v)", took, timeout)
	if took > timeout+time.Second {
		t.Fatalf("released %v after the last heartbeat, want within heartbeat_timeout + 1s (%v)", took, timeout+time.Second)
	}
	// The HTTP snapshot is stored after the relays are written: wait for it.
	h.waitHazard(HazardAlarmSupervision.String())
	h.c.WaitPayload(h.topic("fs", "cause"), "alarm_supervision", wait)

	mark, resumed := h.c.Mark(), time.Now()
	startHeartbeats(t, hbClient, "ha/doorbridge/heartbeat", 200*time.Millisecond)
	h.waitPower("0", true, wait, "relocks once heartbeats resume")
	h.waitPower("1", true, wait, "fail-secure door back to its last command")
	locked := h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
	if d := locked.At.Sub(resumed); d < testRelockDelay-50*time.Millisecond {
		t.Fatalf("relocked %v after heartbeats resumed, before relock_delay %v", d, testRelockDelay)
	}
	h.neverLatched()
}

// A source's availability topic saying offline releases, per device under
// a wildcard, in both of Zigbee2MQTT's payload forms.
func TestAlarmAvailabilityOfflineReleases(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		a := zigbeeSmoke(1)
		a.AvailabilityTopic = "zigbee2mqtt/+/availability"
		a.AvailabilityOffline = config.DefaultAvailabilityOffline
		c.Alarms = []config.Alarm{a}
	})
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false, "battery": 90}`, true)
	h.c.Publish("zigbee2mqtt/kitchen_smoke/availability", `{"state": "online"}`, true)
	h.c.Publish("zigbee2mqtt/lamp/availability", `offline`, true) // not a smoke detector
	h.waitPower("0", true, wait, "locks with the detector clear and online")

	for _, offline := range []string{`{"state": "offline"}`, "offline"} {
		start := time.Now()
		h.c.Publish("zigbee2mqtt/kitchen_smoke/availability", offline, true)
		took := h.waitReleased(start, "an offline detector releases the maglock")
		t.Logf("availability %s → fail-safe released in %v", offline, took)
		h.waitHazard(HazardAlarmSupervision.String())
		if h.power("1") {
			t.Fatalf("fail-secure door powered")
		}
		h.c.Publish("zigbee2mqtt/kitchen_smoke/availability", "online", true)
		h.waitPower("0", true, wait, "relocks when the detector is back online")
	}
	h.neverLatched()
}
