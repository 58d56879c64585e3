package bridge

import (
	"strings"
	"testing"
	"unsafe"
)

// The attributes of a door that did not change are not marshalled again,
// although door.energized and door.lockedKnown return new pointers on
// every call (an idle tick with 256 doors marshalled 256 JSON documents).
func TestAttrsJSONCachedAcrossNewPointers(t *testing.T) {
	var c pubCache
	d := &door{}
	attrs := func(energized, locked bool) doorAttributes {
		return doorAttributes{FailMode: "fail_safe", Energized: &energized, Locked: &locked, Cause: CauseNormal}
	}
	first := c.attrsJSON(d, attrs(true, true))
	again := c.attrsJSON(d, attrs(true, true))
	if unsafe.StringData(first) != unsafe.StringData(again) {
		t.Fatalf("equal attributes marshalled again: %s", again)
	}
	changed := c.attrsJSON(d, attrs(false, false))
	if changed == first {
		t.Fatalf("changed attributes returned the cached JSON %s", changed)
	}
	unknown := c.attrsJSON(d, doorAttributes{FailMode: "fail_safe", Cause: CauseNormal})
	if unknown == changed {
		t.Fatalf("unknown power returned the JSON of a known one: %s", unknown)
	}
}

// A door's state that could not be queued (the publish queue was full) is
// published by the next publishState, although the door did not change:
// publishState skips only doors whose every topic holds what it would
// publish.
func TestPublishStateRetriesADroppedDoor(t *testing.T) {
	l, clk := newTestLoop(t, withoutLatch())
	l.alarm("OFF")
	l.settle(clk)
	full := queueLink(l.b, 1)
	full.queue <- pubMsg{topic: "filler"}
	l.mq = full
	l.forgetPublished()
	l.publishState()
	l.mq = queueLink(l.b, publishQueue)
	l.publishState()
	got := map[string]string{}
	for len(l.mq.queue) > 0 {
		m := <-l.mq.queue
		got[m.topic] = m.payload
	}
	for _, d := range l.b.doors {
		if got[d.topics.State] != d.state() || got[d.topics.Attributes] == "" {
			t.Errorf("door %s: state %q and attributes %q published after the drop, want %q and its attributes",
				d.cfg.ID, got[d.topics.State], got[d.topics.Attributes], d.state())
		}
	}
	// Published now: the next evaluation publishes nothing for the doors.
	l.publishState()
	for len(l.mq.queue) > 0 {
		if m := <-l.mq.queue; strings.Contains(m.topic, "/"+l.b.doors[0].cfg.ID+"/") {
			t.Errorf("unchanged door republished: %s %q", m.topic, m.payload)
		}
	}
}
