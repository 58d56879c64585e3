package main

import (
	"testing"
	"time"
)

// Only a heartbeat sent after the link was restored ends a link period,
// whatever its kind, even one that reached the monitor after the restore:
// a heartbeat a silent proxy held may come from a connection the bridge
// has already dropped, and one the old process sent before its SIGTERM
// (or before mosquitto was killed) proves nothing about the new
// connection. (Review of session 6: with held heartbeats accepted for a
// silent link, a relay powered 50 ms after the resume, before the bridge's
// new connection sent any heartbeat, was not reported.)
func TestOnlyAHeartbeatSentAfterTheRestoreEndsALinkPeriod(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, kind := range []string{"silent", "bridge", "broker"} {
		tr := newTruth()
		tr.down(kind, at(0), "down")
		tr.heartbeat(at(100))
		tr.restored(kind, at(2300))
		tr.heartbeat(at(1800)) // sent while down, delivered after the restore
		if tr.linkUp() {
			t.Errorf("%s: a heartbeat sent before the restore ended the period", kind)
		}
		if p := tr.overdue(at(2350), releaseBudgets()); p == nil || p.kind != kind {
			t.Errorf("%s: 2.35 s after it began: got %v, want the %s hazard overdue", kind, p, kind)
		}
		tr.heartbeat(at(2450))
		if !tr.linkUp() {
			t.Errorf("%s: a heartbeat sent after the restore did not end the period", kind)
		}
		if p := tr.overdue(at(2500), releaseBudgets()); p != nil {
			t.Errorf("%s: after the period ended: %s hazard overdue", kind, p.kind)
		}
	}
}
