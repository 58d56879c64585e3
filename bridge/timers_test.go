package bridge

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/internal/hwwatchdog"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
)

// An idle loop sleeps until its next deadline, never longer than
// loop_timeout/2 (the in-process watchdog expects a check-in within
// loop_timeout); anything that needs the tick's resolution brings it back.
func TestNextTick(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	wd := testConfig("").Watchdog
	half := wd.LoopTimeout / 2 // 1 s; testHeartbeatInterval is 100 ms
	tick := 100 * time.Millisecond
	// slowLink leaves the bridge's own heartbeat far off, so that other
	// deadlines come first.
	slowLink := func(c *config.Config) {
		c.Watchdog.HeartbeatInterval = 5 * time.Second
		c.Watchdog.HeartbeatTimeout = 15 * time.Second
	}
	withUPS := func(c *config.Config) {
		slowLink(c)
		c.Power = []config.PowerSource{{Type: "mqtt", Name: "ups", Topic: "ups/state", PayloadOK: "OL", PayloadLost: "OB", Timeout: time.Minute}}
	}

	cases := []struct {
		name   string
		mutate func(*config.Config)
		setup  func(l *loop, clk *fakeClock)
		want   time.Duration // after the last tick, which is at start
	}{
		{"heartbeat to send", nil, nil, wd.HeartbeatInterval},
		{"heartbeat sent long ago: at once", nil, func(l *loop, clk *fakeClock) {
			l.hbSentAt = start.Add(-time.Hour)
		}, -time.Hour + wd.HeartbeatInterval},
		{"nothing due: loop_timeout/2", slowLink, nil, half},
		{"the echo goes stale first", slowLink, func(l *loop, clk *fakeClock) {
			l.hbRecvAt = start.Add(-15*time.Second + 200*time.Millisecond)
		}, 200*time.Millisecond + past},
		{"an alarm source's heartbeat goes stale", func(c *config.Config) {
			slowLink(c)
			c.Alarms[0].HeartbeatTopic = "ha/heartbeat"
			c.Alarms[0].HeartbeatTimeout = time.Minute
		}, func(l *loop, clk *fakeClock) {
			l.alarms[0].beatAt = start.Add(-time.Minute + 300*time.Millisecond)
		}, 300*time.Millisecond + past},
		{"an MQTT power source's reading goes stale", withUPS, func(l *loop, clk *fakeClock) {
			l.mqttPower[0].known, l.mqttPower[0].at = true, start.Add(-time.Minute+50*time.Millisecond)
		}, 50*time.Millisecond + past},
		{"an MQTT power source without a reading has no deadline (it is lost already)", withUPS, func(l *loop, clk *fakeClock) {
			l.mqttPower[0].known, l.mqttPower[0].at = false, time.Time{}
		}, half},

		// busy: every tick
		{"a hazard", nil, func(l *loop, clk *fakeClock) { l.alarm("ON") }, tick},
		{"held for relock_delay", nil, func(l *loop, clk *fakeClock) {
			l.alarm("ON")
			l.alarm("OFF")
		}, tick},
		{"link not proven", nil, func(l *loop, clk *fakeClock) {
			l.connected = false
			l.evaluate("test")
		}, tick},
		{"a momentary OPEN", nil, func(l *loop, clk *fakeClock) {
			l.b.doors[0].momentaryUntil = start.Add(time.Second)
		}, tick},
		{"a jammed relay", nil, func(l *loop, clk *fakeClock) {
			l.b.doors[1].fault, l.b.doors[1].faultErr = true, errors.New("i2c: no ack")
		}, tick},
		{"a relay just recovered", nil, func(l *loop, clk *fakeClock) {
			l.b.doors[1].faultCleared = start
		}, tick},
		{"a relay recovered before relock_delay: idle again", nil, func(l *loop, clk *fakeClock) {
			l.b.doors[1].faultCleared = start.Add(-wd.RelockDelay - time.Millisecond)
		}, wd.HeartbeatInterval},
		{"door inputs to poll", nil, func(l *loop, clk *fakeClock) {
			l.b.doors[0].io = &doorIO{}
		}, tick},
		{"HA asked for a republish", nil, func(l *loop, clk *fakeClock) { l.republishPending = true }, tick},
		{"a loop_timeout shorter than two ticks", func(c *config.Config) {
			c.Watchdog.LoopTimeout = 100 * time.Millisecond
		}, func(l *loop, clk *fakeClock) { l.alarm("ON") }, 50 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: start.Add(-time.Second)}
			l, _ := newTestLoop(t, withClock(clk), withoutLatch(), unvalidated(), withConfig(c.mutate), idle())
			clk.t = start
			l.hbSentAt, l.hbRecvAt = start, start
			if c.setup != nil {
				c.setup(l, clk)
			}
			if got := l.nextTick(start).Sub(start); got != c.want {
				t.Fatalf("next tick %v after the last, want %v", got, c.want)
			}
		})
	}
}

// However the deadlines fall, the next tick is never more than
// loop_timeout/2 after the last: the loop checks in with the watchdog.
func TestNextTickChecksInWithTheWatchdog(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	for _, lt := range []time.Duration{100 * time.Millisecond, time.Second, 2 * time.Second} {
		clk := &fakeClock{t: start}
		l, _ := newTestLoop(t, withClock(clk), withoutLatch(), unvalidated(), withConfig(func(c *config.Config) {
			c.Watchdog.LoopTimeout = lt
			c.Watchdog.HeartbeatInterval = 10 * time.Second
			c.Watchdog.HeartbeatTimeout = 30 * time.Second
		}), idle())
		for _, busy := range []bool{false, true} {
			if busy {
				l.alarm("ON")
			}
			if got := l.nextTick(start).Sub(start); got <= 0 || got > lt/2 {
				t.Fatalf("loop_timeout %v, busy %v: next tick %v after the last, want within (0, %v]", lt, busy, got, lt/2)
			}
		}
	}
}

// The HTTP snapshot is rebuilt only when something in it changed, and then
// shows the change: an idle evaluation keeps the same snapshot.
func TestSnapshotRebuiltOnlyOnChange(t *testing.T) {
	l, _ := newTestLoop(t, withoutLatch(), idle())
	before := l.b.State()
	l.evaluate("test")
	l.evaluate("test")
	if l.b.State() != before {
		t.Fatal("an evaluation that changed nothing built a new snapshot")
	}
	fsec := l.b.doors[1]
	steps := []struct {
		name  string
		do    func()
		check func(s *Snapshot) bool
	}{
		{"command", func() {
			l.acceptDoorCommand(fsec, DoorCommand{Request: RequestUnlock}, "db/t1/fsec/set")
		}, func(s *Snapshot) bool {
			return is(s.Doors[1].Energized, true) && is(s.Doors[1].Locked, false) && s.Doors[1].State == StateUnlocked
		}},
		{"lockdown", func() {
			l.lockdown = true
			l.evaluate("test")
		}, func(s *Snapshot) bool { return s.Lockdown && is(s.Doors[1].Locked, true) }},
		{"alarm", func() { l.alarm("ON") }, func(s *Snapshot) bool {
			return len(s.Hazards) == 1 && s.Hazards[0] == HazardAlarm.String() && is(s.Doors[0].Locked, false) &&
				len(s.Doors[0].Hazards) == 1 && s.Doors[0].Cause == HazardAlarm.String()
		}},
		{"link lost", func() {
			l.connected = false
			l.evaluate("test")
		}, func(s *Snapshot) bool { return !s.Connected }},
		{"a door's own hazard", func() {
			l.link()
			l.evaluate("test")
			fsec.fault, fsec.faultErr = true, errors.New("jammed")
			l.evaluate("test")
		}, func(s *Snapshot) bool {
			// The sim relay writes fine again at once: the door is no longer
			// jammed, but held by the driver hazard for relock_delay.
			return slices.Contains(s.Doors[1].Hazards, HazardDriver.String()) && s.Hazards[0] == HazardAlarm.String()
		}},
	}
	for _, st := range steps {
		prev := l.b.State()
		st.do()
		l.waitRelays(wait, "relay") // the relay writers' news reaches the loop
		s := l.b.State()
		if s == prev || !st.check(s) {
			t.Fatalf("%s: snapshot %+v (rebuilt: %v)", st.name, s, s != prev)
		}
	}
}

// An idle loop still ticks in time for the systemd and hardware watchdog
// pings, which only ticks send (liveness.go): WatchdogSec=400ms asks for a
// ping every 200 ms, more often than loop_timeout/2.
func TestNextTickFeedsSecondLineWatchdogs(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	clk := &fakeClock{t: start}
	l, _ := newTestLoop(t, withClock(clk), withoutLatch(), unvalidated(), withConfig(func(c *config.Config) {
		c.Watchdog.HeartbeatInterval = 10 * time.Second
		c.Watchdog.HeartbeatTimeout = 30 * time.Second
	}), idle())
	clk.t = start
	l.hbSentAt, l.hbRecvAt = start, start
	n, err := sdnotify.New("/run/doorbridge-test-notify", 400*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	l.live.notify, l.live.sdEvery, l.live.lastSD = n, n.WatchdogInterval()/2, time.Now()
	if got := l.nextTick(start).Sub(start); got <= 100*time.Millisecond || got > 200*time.Millisecond+past {
		t.Fatalf("systemd ping every 200 ms: next tick %v after the last", got)
	}
	l.live.notify = nil
	l.live.hw, l.live.hwEvery, l.live.lastHW = &hwwatchdog.Device{}, 300*time.Millisecond, time.Now()
	if got := l.nextTick(start).Sub(start); got <= 200*time.Millisecond || got > 300*time.Millisecond+past {
		t.Fatalf("hardware ping every 300 ms: next tick %v after the last", got)
	}
}

// is reports whether a known (non-nil) state is want.
func is(b *bool, want bool) bool { return b != nil && *b == want }
