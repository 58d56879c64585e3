package bridge

import (
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/policy"
)

// policy cannot import config: its fail mode names must still be config's.
func TestFailModeNamesMatchConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode FailMode
	}{{config.FailSafe, FailSafe}, {config.FailSecure, FailSecure}} {
		got, err := ParseFailMode(tt.name)
		if err != nil || got != tt.mode || tt.mode.String() != tt.name {
			t.Errorf("fail mode %q: parsed %v, %v; String() = %q", tt.name, got, err, tt.mode.String())
		}
	}
}

// The battery budget the loop passes is R8's: at most 10 minutes on battery.
func TestBatteryBudgetIsR8(t *testing.T) {
	if config.MaxHoldOnBattery <= 0 || config.MaxHoldOnBattery > policy.MaxBatteryHold {
		t.Fatalf("config.MaxHoldOnBattery = %v, R8 allows (0, %v]", config.MaxHoldOnBattery, policy.MaxBatteryHold)
	}
}

// The loop applies what the policy returns: a tripped watchdog keeps a lock
// off that the rules would power, and a hazard ends a momentary OPEN for
// good (the rules themselves are tested in package policy).
func TestLoopAppliesWatchdogOverrideAndMomentaryEnd(t *testing.T) {
	l, clk := newTestLoop(t)
	b, cfg := l.b, l.b.cfg
	healthy := func() {
		l.link()
		l.evaluate("test")
		l.waitRelays(wait, "relay") // the relay writers write off the loop
	}
	l.alarms[0].setPlain(alarmOff)
	healthy()
	clk.t = clk.t.Add(cfg.Watchdog.RelockDelay)
	healthy()
	fsec := b.byID["fsec"]
	if l.effective.Any() || fsec.power {
		t.Fatalf("not healthy and locked: hazards %v, strike powered %v", l.effective, fsec.power)
	}

	fsec.momentaryUntil = clk.t.Add(time.Minute)
	healthy()
	if !fsec.power || fsec.cause != CauseMomentary {
		t.Fatalf("momentary OPEN: strike powered %v, cause %q", fsec.power, fsec.cause)
	}
	b.wd.tripped.Store(true)
	healthy()
	if fsec.power {
		t.Fatalf("strike powered over the watchdog's emergency off")
	}
	b.wd.tripped.Store(false)
	healthy()
	if !fsec.power {
		t.Fatalf("strike not powered again once the watchdog let go (momentary still running)")
	}

	l.alarms[0].setPlain(alarmOn)
	healthy()
	if fsec.power || !fsec.momentaryUntil.IsZero() {
		t.Fatalf("alarm: strike powered %v, momentary until %v", fsec.power, fsec.momentaryUntil)
	}
	l.alarms[0].setPlain(alarmOff)
	healthy()
	clk.t = clk.t.Add(cfg.Watchdog.RelockDelay)
	healthy()
	if l.effective.Any() || fsec.power || fsec.cause != CauseNormal {
		t.Fatalf("after the hazard: hazards %v, strike powered %v, cause %q (a momentary OPEN never resumes)",
			l.effective, fsec.power, fsec.cause)
	}
}
