package bridge

import (
	"testing"
	"time"
)

// originsOf hands l's audit records to the returned list from now on.
func originsOf(l *loop) *[]auditEvent {
	var got []auditEvent
	l.b.audit.sink = func(e auditEvent) { got = append(got, e) }
	return &got
}

// A latch restored from the broker is recorded as restored, whatever the
// loop handled before it: the latch record used to take the origin of the
// previous event (here "alarm:...", the alarm source's clear).
func TestLatchRestoreOrigin(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := loopBridge(t, clk, nil)
	l.alarm("OFF")
	l.flushLater()
	got := originsOf(l)
	l.link()
	l.onMessage(evMessage{topic: l.b.topics.AlarmLatched, payload: []byte("ON"), retained: true})
	l.waitRelays(wait, "relay")
	l.flushLater()
	seen := map[string]bool{}
	for _, e := range *got {
		if e.Kind == "latch" || e.Kind == "hazard" && e.Hazard == HazardAlarm.String() {
			seen[e.Kind] = true
			if e.Origin != "latch:restore" {
				t.Errorf("%s %s: origin %q, want latch:restore", e.Kind, e.Outcome, e.Origin)
			}
		}
	}
	if !seen["latch"] || !seen["hazard"] {
		t.Fatalf("no latch or alarm hazard record: %+v", *got)
	}
}
