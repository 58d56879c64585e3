package bridge

import (
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// ATTACK (any client that may publish the republish button or Home
// Assistant's birth topic: Home Assistant, and on the embedded broker or
// mosquitto any integration with write on homeassistant/#): the republish
// itself is debounced, but onRepublish logs "republishing discovery and
// state" at Info for EVERY message before the debounce. A flood is one log
// line per message: journald's per-unit rate limit (10000 per 30 s by
// default) then drops the bridge's own lines, alarms and hazards included.
func TestAttackRepublishFloodLogsPerMessage(t *testing.T) {
	attackProbe(t)
	h, logs, _ := floodHarness(t, nil)
	h.ready()
	h.flood(floodN, func(i int) (string, string) {
		if i%2 == 0 {
			return h.b.topics.Republish, "PRESS"
		}
		return h.b.topics.HAStatus, "online"
	})
	h.c.Sync(wait)
	var n int
	testbroker.Eventually(t, floodWait, func() bool {
		n = strings.Count(logs.String(), `msg="republishing discovery and state"`)
		return n >= floodN/10
	}, "log lines")
	h.stop()
	n = strings.Count(logs.String(), `msg="republishing discovery and state"`)
	t.Logf("%d republish/birth messages: %d log lines", floodN, n)
	if n > 50 {
		t.Errorf("%d log lines for %d junk republish/birth messages: per-message log output", n, floodN)
	}
}
