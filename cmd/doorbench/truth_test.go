package main

import (
	"testing"
	"time"
)

// CI run 6 (soak seed 1796602042952531429, step 22): the link was silent
// for 1.534 s and resumed; the heartbeat the bridge had sent during the
// silence was delivered then, the bridge saw its echo, and 116 ms later
// the link went silent again, before the bridge's next heartbeat. Judged by
// send times alone the soak took both silences for one and found the
// relays the bridge (rightly) relocked 212 ms into the second one powered
// "2.018 s after link silent".
func TestHeartbeatHeldBySilenceEndsIt(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := newTruth()
	tr.down("silent", at(0), "link silent")
	tr.restored("silent", at(1534))
	tr.heartbeat(at(1450), at(1536)) // sent while silent, delivered on resume
	if !tr.linkUp() {
		t.Fatal("a heartbeat delivered after the link resumed did not end the silence")
	}
	tr.down("silent", at(1650), "link silent")
	if p := tr.overdue(at(2018), releaseBudgets()); p != nil {
		t.Errorf("at 2.018 s: %s hazard from %v reported overdue; the second silence began 368 ms before",
			p.kind, p.start.Sub(t0))
	}
	if p := tr.overdue(at(1650+2001), releaseBudgets()); p == nil || p.kind != "silent" {
		t.Errorf("2.001 s into the second silence: got %v, want the silent hazard overdue", p)
	}
}

// A heartbeat the monitor saw before the link was restored proves nothing:
// the silence goes on.
func TestHeartbeatBeforeRestoreKeepsSilence(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := newTruth()
	tr.down("silent", at(0), "link silent")
	tr.heartbeat(at(100), at(120))
	tr.restored("silent", at(1500))
	tr.heartbeat(at(1400), at(1500)) // not after the restore
	tr.heartbeat(at(-10), at(1600))  // sent before the silence, read late
	if tr.linkUp() {
		t.Fatal("the link counted as up on a heartbeat read no later than the restore, or sent before the silence")
	}
	if p := tr.overdue(at(2001), releaseBudgets()); p == nil || p.kind != "silent" {
		t.Errorf("got %v, want the silent hazard overdue", p)
	}
}

// After a bridge restart (or a broker restart) only a heartbeat sent after
// it counts: one the old process sent just before its SIGTERM may reach the
// monitor late, and the new process has not connected yet.
func TestHeartbeatOfOldProcessKeepsRestart(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, kind := range []string{"bridge", "broker"} {
		tr := newTruth()
		tr.down(kind, at(0), "down")
		tr.restored(kind, at(100))
		tr.heartbeat(at(-5), at(101))
		if tr.linkUp() {
			t.Errorf("%s: a heartbeat sent before the restart ended the period", kind)
		}
		tr.heartbeat(at(150), at(151))
		if !tr.linkUp() {
			t.Errorf("%s: a heartbeat sent after the restart did not end the period", kind)
		}
	}
}
