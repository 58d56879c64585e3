package bridge

import (
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
