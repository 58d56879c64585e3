package bridge

import (
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// ATTACK (any client that may publish the republish button or Home
// Assistant's birth topic: Home Assistant, and on the embedded broker or
// mosquitto any integration with write on homeassistant/#): the republish
// itself is debounced, but onRepublish logged "republishing discovery and
// state" at Info for EVERY message before the debounce. A flood was one log
// line per message: journald's per-unit rate limit (10000 per 30 s by
// default) then drops the bridge's own lines, alarms and hazards included.
// Fixed: the line is written when a republish runs, with how many requests
// it answers; this runs by default.
func TestAttackRepublishFloodLogsPerMessage(t *testing.T) {
	h, logs, _ := floodHarness(t, nil)
	h.ready()
	h.flood(floodN, func(i int) (string, string) {
		if i%2 == 0 {
			return h.b.topics.Republish, "PRESS"
		}
		return h.b.topics.HAStatus, "online"
	})
	h.c.Sync(wait)
	requests := regexp.MustCompile(`msg="republishing discovery and state" .*requests=(\d+)`)
	answered := func() int {
		n := 0
		for _, m := range requests.FindAllStringSubmatch(logs.String(), -1) {
			v, _ := strconv.Atoi(m[1])
			n += v
		}
		return n
	}
	lines := func() int { return strings.Count(logs.String(), `msg="republishing discovery and state"`) }
	// Without the fix a line a message, without requests=: count those too.
	// Half the flood is enough to tell (with the fix, a few lines; without,
	// a thousand): a stock mosquitto drops what a client has not read past
	// its max_queued_messages (1000), which a -race bridge on a loaded
	// machine falls behind (1551 of 2000 arrived once).
	testbroker.Eventually(t, floodWait, func() bool { return answered() >= floodN/2 || lines() >= floodN/2 },
		"republish requests answered: %d of %d", answered(), floodN)
	h.stop()
	n := lines()
	t.Logf("%d republish/birth messages: %d log lines", floodN, n)
	if n > 50 {
		t.Errorf("%d log lines for %d junk republish/birth messages: per-message log output", n, floodN)
	}
}

// A repeated empty availability payload (a retained clear, again and again)
// changes nothing after the first and logs nothing either.
func TestRepeatedAvailabilityClearLogsOnce(t *testing.T) {
	a := jsonAlarm("smoke", true, false)
	a.AvailabilityTopic = "zigbee2mqtt/+/availability"
	a.AvailabilityOffline = config.DefaultAvailabilityOffline
	l, _ := newTestLoop(t, withAlarms(a), evaluated())
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/kitchen/availability", "online", true)
	l.flushLater() // the loop logs after its relay writes: these lines go to the old logger
	logs := &logSink{}
	l.log = slog.New(slog.NewTextHandler(logs, nil))
	for range floodN {
		l.send("zigbee2mqtt/kitchen/availability", "", false)
	}
	l.flushLater()
	n := strings.Count(logs.String(), `msg="alarm source availability"`)
	t.Logf("%d empty availability messages: %d log lines", floodN, n)
	if n != 1 {
		t.Errorf("%d log lines, want 1 (the clear that changed something)", n)
	}
}

// A refused reset is a warning in the log, not an info line: a log filtered
// to warnings must still show that someone tried to reset during a fire.
func TestRefusedResetLoggedAsWarning(t *testing.T) {
	l, _ := newTestLoop(t, withAlarms(jsonAlarm("smoke", true, false)), evaluated())
	l.send("zigbee2mqtt/kitchen", `{"smoke": true}`, false)
	l.flushLater()
	logs := &logSink{}
	l.log = slog.New(slog.NewTextHandler(logs, nil))
	l.send(l.b.topics.AlarmReset, "RESET", false)
	l.flushLater()
	out := logs.String()
	if !strings.Contains(out, "reset refused: alarm still active") {
		t.Fatalf("no refusal logged: %s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "reset refused") && !strings.Contains(line, "level=WARN") {
			t.Errorf("refused reset not a warning: %s", line)
		}
	}
}
