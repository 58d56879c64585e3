package bridge

import (
	"strings"
	"testing"
	"time"
)

// A source flipping its alarm ON and OFF (no latch: every flip raises or
// clears the alarm hazard) is recorded in full up to safetyBurst a minute,
// then summarised; another source's change in that minute, and the hazard
// it raises, are still recorded in full (issue 12 item 6).
func TestFlappingAlarmSourceIsSummarised(t *testing.T) {
	l, clk := newTestLoop(t, withAlarms(jsonAlarm("smoke", true, false)), withoutLatch(), evaluated())
	var got []auditEvent
	l.b.audit.sink = func(e auditEvent) { got = append(got, e) }
	l.send("zigbee2mqtt/kitchen", `{"smoke": false}`, true)
	l.send("zigbee2mqtt/attic", `{"smoke": false}`, true)
	l.flushLater()
	const flips = 1000
	for i := range flips {
		l.send("zigbee2mqtt/kitchen", map[bool]string{true: `{"smoke": true}`, false: `{"smoke": false}`}[i%2 == 0], false)
		l.flushLater()
	}
	l.send("zigbee2mqtt/attic", `{"smoke": true}`, false)
	l.flushLater()
	count := func(kind, origin string) (n int) {
		for _, e := range got {
			if e.Kind == kind && e.Origin == origin && e.Outcome != "summary" {
				n++
			}
		}
		return n
	}
	if n := count("alarm", "mqtt:zigbee2mqtt/kitchen"); n != safetyBurst {
		t.Errorf("%d records of the flapping source, want %d", n, safetyBurst)
	}
	if n := count("hazard", "alarm:zigbee2mqtt/kitchen"); n != safetyBurst {
		t.Errorf("%d hazard records from the flapping source, want %d", n, safetyBurst)
	}
	if a, h := got[len(got)-2], got[len(got)-1]; a.Origin != "mqtt:zigbee2mqtt/attic" || a.Outcome != "alarm" ||
		h.Origin != "alarm:zigbee2mqtt/attic" || h.Outcome != "raised" {
		t.Errorf("the other source's alarm, or the hazard it raised, not recorded in full: %+v", got[len(got)-2:])
	}
	before := len(got)
	clk.t = clk.t.Add(time.Minute)
	l.reportSafetySummaries(clk.t)
	l.flushLater()
	var summaries []string
	for _, e := range got[before:] {
		if e.Outcome == "summary" {
			summaries = append(summaries, e.Detail)
		}
	}
	t.Logf("%d flips: %d records; summaries: %q", flips, before, summaries)
	if len(summaries) != 2 || !strings.Contains(summaries[0], "more alarm records from mqtt:zigbee2mqtt/kitchen") ||
		!strings.Contains(summaries[1], "more hazard records from alarm:zigbee2mqtt/kitchen") {
		t.Errorf("summaries %q, want the kitchen's alarm and hazard records counted", summaries)
	}
}
