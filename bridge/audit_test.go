package bridge

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// Every audit event goes to MQTT (B/N/events, not retained) and to
// audit.file, numbered without a gap, and a restart continues the numbers.
func TestAuditEventsToFileAndMQTT(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	h := newHarness(t, func(c *config.Config) { c.Audit.File = path })
	h.ready()
	mark := h.c.Mark()
	h.c.Publish(h.topic("fsec", "set"), "UNLOCK", false)
	m := h.c.WaitForAfter(mark, "db/t1/events", wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"kind":"command"`)
	})
	var ev audit.Event
	if err := json.Unmarshal(m.Payload, &ev); err != nil || m.Retained {
		t.Fatalf("event %s (retained %v): %v", m.Payload, m.Retained, err)
	}
	if ev.Seq == 0 || ev.Time.IsZero() || ev.Door != "fsec" || ev.Outcome != "accepted" || ev.Origin != "mqtt:db/t1/fsec/set" {
		t.Fatalf("command event %+v", ev)
	}
	h.c.WaitPayload(h.topic("fsec", "state"), StateUnlocked, wait)
	h.stop()

	events := readAudit(t, path)
	first, last := events[0], events[len(events)-1]
	if first.Kind != "bridge" || first.Outcome != "started" || last.Kind != "bridge" || last.Outcome != "stopped" {
		t.Fatalf("a run starts with started and ends with stopped: first %+v, last %+v", first, last)
	}
	var relay *audit.Event
	for i, e := range events {
		if e.Kind == "relay" && e.Door == "fsec" && e.Energized != nil && *e.Energized {
			relay = &events[i]
		}
	}
	if relay == nil || relay.Cause != CauseNormal || relay.Outcome != "unlocked" || relay.Origin != "command:db/t1/fsec/set" {
		t.Fatalf("no relay event for the strike's UNLOCK: %+v", relay)
	}

	n := len(events)
	h.start()
	h.ready()
	h.stop()
	events = readAudit(t, path)
	if events[n].Seq != uint64(n+1) || events[n].Outcome != "started" {
		t.Fatalf("after a restart: %+v, want seq %d and started", events[n], n+1)
	}
}

// readAudit reads the audit file and checks the sequence has no gap.
func readAudit(t *testing.T, path string) []audit.Event {
	t.Helper()
	var out []audit.Event
	bad, err := audit.ReadAll(path, func(_ string, e audit.Event) { out = append(out, e) })
	if err != nil || bad != 0 || len(out) == 0 {
		t.Fatalf("audit.ReadAll: %d events, %d bad, %v", len(out), bad, err)
	}
	for i, e := range out {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: %+v", i, e.Seq, e)
		}
	}
	return out
}

// What afterIO queued runs once, in order; after a panic in one entry, the
// panic handler's flush runs the rest and not that one again. The latch is
// written to disk before any of it.
func TestFlushLaterRunsEachOnceInOrder(t *testing.T) {
	dir := t.TempDir()
	l, _ := newTestLoop(t, withoutLatch(), withStateDir(dir), idle())
	var ran []int
	latchOnDisk := []bool{}
	l.afterIO(func() { ran = append(ran, 1); latchOnDisk = append(latchOnDisk, l.b.latchOnDisk()) })
	l.afterIO(func() { ran = append(ran, 2); panic("boom") })
	l.afterIO(func() { ran = append(ran, 3) })
	l.setLatch(true, "test", "test")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the entry's panic", r)
			}
		}()
		l.flushLater()
	}()
	l.flushLater()
	l.flushLater()
	if !slices.Equal(ran, []int{1, 2, 3}) {
		t.Fatalf("ran %v, want [1 2 3]", ran)
	}
	if len(latchOnDisk) != 1 || !latchOnDisk[0] {
		t.Fatalf("latch on disk when the first queued entry ran: %v, want [true]", latchOnDisk)
	}
}
