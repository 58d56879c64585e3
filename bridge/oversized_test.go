package bridge

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Through a real broker: a 1 MB alarm message (QoS 1) is skipped under
// paho, counts as a junk value (alarm: the maglock releases), and the QoS 1
// flow goes on: the next OFF relocks.
func TestOversizedAlarmThroughBroker(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		// The shipped timings: a 1 MiB message under -race on a loaded
		// machine held up the heartbeat echo past 500 ms, and the broker
		// hazard released the door before the message was counted.
		c.Watchdog.HeartbeatInterval, c.Watchdog.HeartbeatTimeout = time.Second, 3*time.Second
	})
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.waitPower("0", true, wait, "locked once the alarm is clear")
	h.c.Publish(h.alarmTopic(), string(make([]byte, 1<<20)), false)
	h.waitPower("0", false, wait, "an oversized alarm value is junk: alarm")
	oversized := func() float64 {
		return testutil.ToFloat64(h.b.m.mqttDropped.WithLabelValues(dropOversized, queueSafety))
	}
	testbroker.Eventually(t, wait, func() bool { return oversized() >= 1 }, "the oversized alarm counted on the safety queue")
	if n := oversized(); n != 1 {
		t.Fatalf("oversized on the safety queue counted %v times, want 1", n)
	}
	h.c.Publish(h.alarmTopic(), "OFF", true)
	h.c.Publish(h.topic("fs", "set"), "LOCK", false) // alarm_latch: the latch holds, but commands flow
	h.c.Publish("db/t1/alarm/reset", "RESET", false)
	h.waitPower("0", true, wait, "OFF and RESET after it relock: the QoS 1 flow was not stalled")
}
