package bridge

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/audit"
	"github.com/doorbridge/doorbridge/config"
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
	l, _ := newTestLoop(t, withoutLatch())
	l.alarm("OFF")
	l.flushLater()
	got := originsOf(l)
	l.link()
	l.send(l.b.topics.AlarmLatched, "ON", true)
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

// A release drill is recorded with the origin of the alarm that released
// the doors, like the relay records of that release. It used to take the
// origin of whichever evaluation saw the writes done: "relay", the
// writers' news, on a running bridge.
func TestDrillOriginIsTheAlarm(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Watchdog.AlarmLatch = false })
	h.ready()
	mark := h.b.audit.seq.Load()
	h.c.Publish(h.alarmTopic(), "ON", true)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	drill, ok := h.b.audit.recent.wait(ctx, mark, func(e audit.Event) bool { return e.Kind == "drill" })
	if !ok {
		t.Fatal("no release drill recorded")
	}
	// The drill is recorded before the relay records of the evaluation that
	// saw the writes done (trackRelease runs before reportRelays): wait for
	// the release's record too.
	release, ok := h.b.audit.recent.wait(ctx, mark, func(e audit.Event) bool {
		return e.Kind == "relay" && e.Door == "fs" && e.Outcome == "unlocked"
	})
	want := "alarm:" + h.alarmTopic()
	if !ok || release.Origin != want || drill.Origin != want {
		t.Errorf("drill origin %q, its release's %q (found %v); want %q", drill.Origin, release.Origin, ok, want)
	}
}

// relayNews hands the loop its relay writers' news, as run does, until
// every relay is written.
func (l *loop) relayNews(t *testing.T) {
	t.Helper()
	deadline := time.After(wait)
	for !l.settled() {
		select {
		case <-l.b.relayNews:
			l.onRelayNews()
		case <-deadline:
			t.Fatal("relay writes not done")
		}
	}
}

// Each path that changes the doors records its changes with what caused
// them, evaluation after evaluation: nothing of one path's origin stays
// for the next. (The records of alarm messages and commands name their
// topic, "mqtt:...", and are made before any evaluation.)
func TestOriginOfEachPath(t *testing.T) {
	l, clk := newTestLoop(t, unvalidated(), withConfig(func(c *config.Config) {
		c.Watchdog.AlarmLatch = true
		c.Alarms[0].HeartbeatTopic = "ha/heartbeat"
		c.Alarms[0].HeartbeatTimeout = 5 * time.Second
		c.Power = []config.PowerSource{{Type: "mqtt", Name: "ups", Topic: "ups/state", PayloadOK: "OL", PayloadLost: "OB", Timeout: time.Minute}}
	}), idle())
	l.flushLater()
	got := originsOf(l)
	tp, alarm := l.b.topics, l.b.cfg.Alarms[0].Topic
	msg := func(topic, payload string) func() {
		return func() {
			l.link()
			l.onMessage(evMessage{topic: topic, payload: []byte(payload), retained: topic == tp.AlarmLatched})
		}
	}
	later := func(d time.Duration) func() {
		return func() {
			clk.t = clk.t.Add(d)
			l.link()
			l.evaluate("timer")
		}
	}
	relock := l.b.cfg.Watchdog.RelockDelay
	for _, s := range []struct {
		name string
		do   func()
		want []string
	}{
		{"alarm", msg(alarm, "ON"), []string{"alarm alarm <- mqtt:db/alarm", "latch ON <- alarm:db/alarm",
			"hazard raised alarm <- alarm:db/alarm", "drill released <- alarm:db/alarm", "relay unlocked fs <- alarm:db/alarm"}},
		{"alarm clear", msg(alarm, "OFF"), []string{"alarm clear <- mqtt:db/alarm"}},
		{"reset", msg(tp.AlarmReset, "RESET"), []string{"latch OFF <- reset:db/t1/alarm/reset",
			"hazard cleared alarm <- reset:db/t1/alarm/reset"}},
		{"relock", later(relock), []string{"relay locked fs <- timer"}},
		{"power lost", msg("ups/state", "OB"), []string{"hazard raised power <- power:ups", "relay unlocked fs <- power:ups"}},
		{"power back", msg("ups/state", "OL"), []string{"hazard cleared power <- power:ups"}},
		{"supervision", later(6 * time.Second), []string{"alarm trouble <- mqtt:db/alarm",
			"hazard raised alarm_supervision <- alarm_supervision:db/alarm"}},
		{"alarm heartbeat", msg("ha/heartbeat", "alive"), []string{"alarm supervised <- mqtt:db/alarm",
			"hazard cleared alarm_supervision <- alarm_heartbeat:ha/heartbeat"}},
		{"relock again", later(relock), []string{"relay locked fs <- timer"}},
		{"lockdown", msg(tp.LockdownSet, "ON"), []string{"command accepted lockdown <- mqtt:db/t1/lockdown/set"}},
		{"lockdown off", msg(tp.LockdownSet, "OFF"), []string{"command accepted lockdown <- mqtt:db/t1/lockdown/set"}},
		{"command", msg(l.b.byID["fsec"].topics.Set, "UNLOCK"), []string{"command accepted fsec <- mqtt:db/t1/fsec/set",
			"relay unlocked fsec <- command:db/t1/fsec/set"}},
		{"latch restore", msg(tp.AlarmLatched, "ON"), []string{"latch ON <- latch:restore", "hazard raised alarm <- latch:restore",
			"drill released <- latch:restore", "relay unlocked fs <- latch:restore", "relay locked fsec <- latch:restore"}},
		{"connection lost", func() { l.onDisconnected(evDisconnected{gen: l.gen}) }, []string{"hazard raised broker <- mqtt:connection_lost"}},
		{"shutdown", func() { l.shutdown("shutdown") }, []string{"hazard raised shutdown <- shutdown"}},
	} {
		*got = nil
		s.do()
		l.relayNews(t)
		l.flushLater()
		var rec []string
		for _, e := range *got {
			if e.Kind == "driver" {
				continue // a write overdue on a loaded machine; not what this test is about
			}
			what := e.Kind + " " + e.Outcome
			if e.Door != "" {
				what += " " + e.Door
			}
			if e.Hazard != "" {
				what += " " + e.Hazard
			}
			rec = append(rec, what+" <- "+e.Origin)
		}
		// The writers finish in any order, and the loop reports each
		// write as it hears of it.
		slices.Sort(rec)
		slices.Sort(s.want)
		if !slices.Equal(rec, s.want) {
			t.Errorf("%s: records\n%q\nwant\n%q", s.name, rec, s.want)
		}
	}
}
