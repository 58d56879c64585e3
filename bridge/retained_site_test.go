package bridge

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// A big Zigbee site: 1200 detectors' retained values, one of them a fire,
// published last. On a stock mosquitto with the safety filters at QoS 1,
// the heartbeat echo overtook the queued retained values and past 1000
// queued the rest were dropped: the fire never arrived and the maglock
// stayed locked (review 12 F1). Every retained value must come in, the
// fire with it, and the maglock must never be powered before it.
func TestRetainedFireOnABigSite(t *testing.T) {
	n := 1200
	if v, err := strconv.Atoi(os.Getenv("DOORBRIDGE_TEST_RETAINED_N")); err == nil {
		n = v
	}
	h := newHarnessWith(t, func(c *config.Config) {
		c.Watchdog.AlarmLatch = false
		c.Alarms = append(c.Alarms, config.Alarm{Topic: "zigbee2mqtt/+", ValueJSON: "smoke", On: true, Off: false, MaxSources: 10_000})
	}, func(h *harness) {
		h.c.Publish("db/alarm", "OFF", true)
		for i := range n {
			h.c.Publish(fmt.Sprintf("zigbee2mqtt/det%04d", i), `{"smoke":false}`, true)
		}
		h.c.Publish("zigbee2mqtt/zz_fire", `{"smoke":true}`, true)
		h.c.Sync(wait)
	})
	counts := map[string]int{}
	fire := func() bool {
		v, err := h.b.ConsoleView(context.Background())
		if err != nil {
			return false
		}
		for _, a := range v.Alarms {
			if a.Topic == "zigbee2mqtt/+" {
				counts = a.Counts
				return a.Counts["alarm"] == 1 && a.Counts["clear"] == n
			}
		}
		return false
	}
	testbroker.Eventually(t, 4*wait, fire, "every retained value (%d clear, 1 fire) reached the bridge (broker %s): %v", n, h.broker.Kind(), counts)
	if _, locked := h.b.audit.recent.since(0, func(e audit.Event) bool {
		return e.Kind == "relay" && e.Door == "fs" && e.Outcome == "locked"
	}); locked || h.power("0") {
		t.Fatalf("the maglock was powered while a retained fire was on the broker")
	}
}
