package policy

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genGlobal draws hazards in effect for every door: never the driver
// hazard, which is a door's own; often the battery hold's lone power hazard.
func genGlobal(nonEmpty bool) *rapid.Generator[Hazards] {
	return rapid.Custom(func(t *rapid.T) Hazards {
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return hazardsOf(HazardPower)
		case 1:
			if !nonEmpty {
				return 0
			}
		}
		return Hazards(rapid.IntRange(1, 1<<NumHazards-1).Draw(t, "set")).Without(HazardDriver)
	}).Filter(func(h Hazards) bool { return h.Any() || !nonEmpty })
}

// genDoorEnv draws a door and what every door shares, the battery hold's
// corner (a lone power hazard on a fail-safe door on its own battery) often.
func genDoorEnv(t *rapid.T) (DoorState, Env) {
	env := Env{
		Now:           t0,
		RelockDelay:   time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, "relock_delay")),
		OnBattery:     genDuration(20*time.Minute).Draw(t, "on_battery"),
		BatteryBudget: genDuration(time.Hour).Draw(t, "budget"),
	}
	d := DoorState{
		Mode:         FailMode(rapid.IntRange(0, 1).Draw(t, "mode")),
		PowerRelease: rapid.Bool().Draw(t, "power_release"),
		Fault:        rapid.IntRange(0, 3).Draw(t, "fault") == 0,
	}
	if rapid.Bool().Draw(t, "ever_faulted") {
		d.FaultCleared = t0.Add(-time.Duration(rapid.Int64Range(0, int64(2*time.Minute)).Draw(t, "since_fault")))
	}
	return d, env
}

// genDuration draws a duration up to max, R8's 10 minutes and its edges often.
func genDuration(max time.Duration) *rapid.Generator[time.Duration] {
	return rapid.OneOf(
		rapid.SampledFrom([]time.Duration{0, MaxBatteryHold - time.Nanosecond, MaxBatteryHold, MaxBatteryHold + time.Nanosecond}),
		rapid.Map(rapid.Int64Range(0, int64(max)), func(n int64) time.Duration { return time.Duration(n) }),
	)
}

// decideDoor runs the per-door part of the loop's evaluation, as applyDoor
// does: the door's hazards, the end of a momentary OPEN, the decision.
func decideDoor(global Hazards, d DoorState, env Env, in Inputs, momentaryUntil time.Time) (Hazards, Decision) {
	hz := DoorHazards(global, d, env)
	if MomentaryEnds(momentaryUntil, env.Now, hz) {
		momentaryUntil = time.Time{}
	}
	in.Mode, in.Hazards, in.Momentary = d.Mode, hz, !momentaryUntil.IsZero()
	return hz, Decide(in)
}

func genMomentaryUntil(t *rapid.T) time.Time {
	if !rapid.Bool().Draw(t, "momentary") {
		return time.Time{}
	}
	return t0.Add(time.Duration(rapid.Int64Range(-int64(time.Minute), int64(time.Minute)).Draw(t, "momentary_until")))
}

// R1, R3: no hazard ever powers a fail-secure lock (an electric strike
// stays locked), whatever the door, the budget or the request.
func TestPropertyNoHazardPowersFailSecure(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		global := genGlobal(true).Draw(t, "global")
		d, env := genDoorEnv(t)
		d.Mode = FailSecure
		hz, dec := decideDoor(global, d, env, genInputs().Draw(t, "in"), genMomentaryUntil(t))
		if !hz.Any() || dec.Power {
			t.Fatalf("global %v on %+v: door hazards %v, decision %+v", global, d, hz, dec)
		}
	})
}

// R1, R8: every hazard de-energizes every door, except the battery hold: a
// lone power hazard, on a fail-safe door with power_release false, inside
// its budget and R8's 10 minutes.
func TestPropertyEveryHazardReleasesButTheBatteryHold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		global := genGlobal(true).Draw(t, "global")
		d, env := genDoorEnv(t)
		in, until := genInputs().Draw(t, "in"), genMomentaryUntil(t)
		// The budget's edges on every draw, for both kinds of door.
		for _, d.Mode = range []FailMode{FailSafe, FailSecure} {
			for _, d.PowerRelease = range []bool{false, true} {
				for _, env.OnBattery = range []time.Duration{env.OnBattery, 0, MaxBatteryHold - 1, MaxBatteryHold, time.Hour} {
					for _, env.BatteryBudget = range []time.Duration{env.BatteryBudget, MaxBatteryHold, MaxBatteryHold + 1, 2 * time.Hour} {
						checkReleased(t, global, d, env, in, until)
					}
				}
			}
		}
	})
}

func checkReleased(t *rapid.T, global Hazards, d DoorState, env Env, in Inputs, until time.Time) {
	hz, dec := decideDoor(global, d, env, in, until)
	hold := global == hazardsOf(HazardPower) && d.Mode == FailSafe && !d.PowerRelease &&
		env.OnBattery < env.BatteryBudget && env.OnBattery < 10*time.Minute
	if !hold && hz&global != global {
		t.Fatalf("global %v on %+v (%+v): the door sees only %v", global, d, env, hz)
	}
	if dec.Power && !hold {
		t.Fatalf("global %v on %+v (%+v): lock powered (%+v)", global, d, env, dec)
	}
	if hold && hz.Any() && !hz.Has(HazardDriver) {
		t.Fatalf("battery hold on %+v (%+v): door still sees %v", d, env, hz)
	}
}

// R9: while the watchdog is tripped no lock is powered, whatever the rest.
func TestPropertyWatchdogOverrideNeverPowers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		global := genGlobal(false).Draw(t, "global")
		d, env := genDoorEnv(t)
		in := genInputs().Draw(t, "in")
		in.WatchdogTripped = true
		if _, dec := decideDoor(global, d, env, in, genMomentaryUntil(t)); dec.Power {
			t.Fatalf("watchdog tripped, %+v powered: %+v", d, dec)
		}
	})
}

// R22, R1: a jammed relay, or one that works again less than relock_delay
// ago, is never powered, not even by the battery hold.
func TestPropertyDriverHazardNeverPowers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		global := genGlobal(false).Draw(t, "global")
		d, env := genDoorEnv(t)
		if rapid.Bool().Draw(t, "jammed") || env.RelockDelay == 0 {
			d.Fault = true
		} else {
			// Recovered less than relock_delay ago.
			d.Fault = false
			d.FaultCleared = t0.Add(-time.Duration(rapid.Int64Range(0, int64(env.RelockDelay)-1).Draw(t, "since_fault")))
		}
		hz, dec := decideDoor(global, d, env, genInputs().Draw(t, "in"), genMomentaryUntil(t))
		if !hz.Has(HazardDriver) || dec.Power {
			t.Fatalf("%+v (%+v): door hazards %v, decision %+v", d, env, hz, dec)
		}
	})
}

// R13, R6, R1: a momentary OPEN runs until its expiry unless a hazard comes
// first, and never survives (nor resumes after) either.
func TestPropertyMomentaryNeverSurvivesHazardOrExpiry(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		window := time.Duration(rapid.Int64Range(int64(time.Second), int64(30*time.Second)).Draw(t, "unlock_time"))
		until, now, sawHazard := t0.Add(window), t0, false
		steps := rapid.IntRange(1, 20).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(10*time.Second)).Draw(t, "dt")))
			var hz Hazards
			if rapid.IntRange(0, 4).Draw(t, "hazard?") == 0 {
				hz = Hazards(0).With(Hazard(rapid.IntRange(0, int(NumHazards)-1).Draw(t, "hazard")))
			}
			sawHazard = sawHazard || hz.Any()
			if MomentaryEnds(until, now, hz) {
				until = time.Time{}
			}
			running := !until.IsZero()
			if want := !sawHazard && now.Before(t0.Add(window)); running != want {
				t.Fatalf("at +%v (hazard seen: %v): running=%v, want %v", now.Sub(t0), sawHazard, running, want)
			}
			// A strike commanded locked is powered by the momentary OPEN
			// alone: exactly while it runs.
			dec := Decide(Inputs{Mode: FailSecure, Hazards: hz, Momentary: running})
			if dec.Power != running {
				t.Fatalf("at +%v: strike powered=%v with momentary running=%v", now.Sub(t0), dec.Power, running)
			}
		}
	})
}

// R1, R2: the relock hold never ends before relock_delay of continuous
// health (counted from the first evaluation that saw no raw hazard), and
// always ends once it has passed.
func TestPropertyRelockHold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		relock := time.Duration(rapid.Int64Range(0, int64(10*time.Second)).Draw(t, "relock_delay"))
		var (
			h         Held
			now       = t0
			last      Hazards   // the last raw set that was not empty
			healthyAt time.Time // first healthy evaluation since last (zero: none yet)
		)
		steps := rapid.IntRange(1, 30).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(4*time.Second)).Draw(t, "dt")))
			var raw Hazards
			if rapid.Bool().Draw(t, "hazard?") {
				raw = genGlobal(true).Draw(t, "raw")
			}
			h = Hold(h, raw, now, relock)
			want := raw
			switch {
			case raw.Any():
				last, healthyAt = raw, time.Time{}
			case last.Any():
				if healthyAt.IsZero() {
					healthyAt = now
				}
				if now.Sub(healthyAt) < relock {
					want = last
				}
			}
			if h.Hazards != want {
				t.Fatalf("step %d at +%v (raw %v, healthy since +%v, relock_delay %v): in effect %v, want %v",
					i, now.Sub(t0), raw, healthyAt.Sub(t0), relock, h.Hazards, want)
			}
		}
	})
}

// R17: a request is refused exactly when it would power the door's lock
// while a hazard applies to the door; UNLOCK and OPEN of a fail-safe door
// and LOCK of a fail-secure door are never refused. An accepted request
// never powers a lock while the hazard lasts.
func TestPropertyRefusalConsistentWithDecide(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		global := genGlobal(false).Draw(t, "global")
		d, env := genDoorEnv(t)
		hz := DoorHazards(global, d, env)
		req := Request(rapid.IntRange(0, int(RequestLockdownOff)).Draw(t, "req"))
		refused := Refusal(d.Mode, hz, req) != ""
		powers := req == RequestLock || req == RequestLockdownOn
		if req == RequestLockdownOff {
			powers = false
		} else if d.Mode == FailSecure {
			powers = req == RequestUnlock || req == RequestOpen
		}
		if refused != (hz.Any() && powers) {
			t.Fatalf("%v on %v with %v: refused=%v", req, d.Mode, hz, refused)
		}
		if refused {
			return
		}
		in := genInputs().Draw(t, "in")
		switch req {
		case RequestLock:
			in.Command = CommandLock
		case RequestUnlock:
			in.Command = CommandUnlock
		case RequestOpen:
			in.Momentary = true
		case RequestLockdownOn:
			in.Lockdown = true
		case RequestLockdownOff:
			in.Lockdown = false
		}
		in.Mode, in.Hazards = d.Mode, hz
		if dec := Decide(in); hz.Any() && dec.Power {
			t.Fatalf("accepted %v during %v powered a %v lock", req, hz, d.Mode)
		}
	})
}

// The rules together over time, as the loop applies them on every
// evaluation: raw hazards come and go, the relay jams and recovers, mains
// flap, a momentary OPEN starts, the watchdog trips. A powered lock never
// has the watchdog tripped or its driver hazard; a powered strike has no
// hazard in effect at all; a powered door under hazards is only ever a
// maglock inside its battery hold.
func TestPropertyLoopModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := DoorState{Mode: FailMode(rapid.IntRange(0, 1).Draw(t, "mode")), PowerRelease: rapid.Bool().Draw(t, "power_release")}
		relock := time.Duration(rapid.Int64Range(0, int64(10*time.Second)).Draw(t, "relock_delay"))
		var (
			h         Held
			now       = t0
			until     time.Time
			powerLost time.Time
			cmd       = Command(rapid.IntRange(0, 1).Draw(t, "command"))
		)
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(5*time.Minute)).Draw(t, "dt")))
			raw := genGlobal(false).Draw(t, "raw")
			switch {
			case raw.Has(HazardPower) && powerLost.IsZero():
				powerLost = now
			case !raw.Has(HazardPower):
				powerLost = time.Time{}
			}
			switch rapid.IntRange(0, 5).Draw(t, "driver") {
			case 0:
				d.Fault = true
			case 1:
				if d.Fault {
					d.Fault, d.FaultCleared = false, now
				}
			}
			if rapid.IntRange(0, 4).Draw(t, "open?") == 0 {
				until = now.Add(5 * time.Second)
			}
			tripped := rapid.IntRange(0, 9).Draw(t, "tripped?") == 0
			h = Hold(h, raw, now, relock)
			var onBattery time.Duration
			if !powerLost.IsZero() {
				onBattery = now.Sub(powerLost)
			}
			env := Env{Now: now, RelockDelay: relock, OnBattery: onBattery, BatteryBudget: 10 * time.Minute}
			hz := DoorHazards(h.Hazards, d, env)
			if MomentaryEnds(until, now, hz) {
				until = time.Time{}
			}
			dec := Decide(Inputs{Mode: d.Mode, Hazards: hz, Command: cmd, Momentary: !until.IsZero(), WatchdogTripped: tripped})
			if !dec.Power {
				continue
			}
			recovering := !d.FaultCleared.IsZero() && now.Sub(d.FaultCleared) < relock
			switch {
			case tripped || d.Fault || recovering:
				t.Fatalf("step %d: powered with tripped=%v fault=%v recovering=%v", i, tripped, d.Fault, recovering)
			case d.Mode == FailSecure && (raw.Any() || h.Hazards.Any()):
				t.Fatalf("step %d: strike powered with raw %v, in effect %v", i, raw, h.Hazards)
			case h.Hazards.Any() && (d.Mode != FailSafe || d.PowerRelease || h.Hazards != hazardsOf(HazardPower) || onBattery >= 10*time.Minute):
				t.Fatalf("step %d: %+v powered under %v outside the battery hold (on battery %v)", i, d, h.Hazards, onBattery)
			}
		}
	})
}

// R11, R12, R1: the REX window. A fail-safe door is released for rex_time
// after the button was last seen pressed, whatever else is going on (power
// off is always allowed, egress never denied). A fail-secure door unlocks
// for unlock_time after a press, but never against a hazard or lockdown, and
// a hazard or lockdown ends its window for good.
func TestPropertyRexWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		times := DoorInputTimes{
			Mode:           FailMode(rapid.IntRange(0, 1).Draw(t, "mode")),
			RexTime:        time.Duration(rapid.Int64Range(int64(30*time.Second), int64(10*time.Minute)).Draw(t, "rex_time")),
			UnlockTime:     time.Duration(rapid.Int64Range(int64(time.Second), int64(30*time.Second)).Draw(t, "unlock_time")),
			HeldOpenTime:   30 * time.Second,
			LockSenseDelay: 2 * time.Second,
		}
		window := times.RexTime
		if times.Mode == FailSecure {
			window = times.UnlockTime
		}
		m := NewDoorInputs(times)
		now := t0
		var windowFrom time.Time // the press that opened the running window (zero: none)
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(window)).Draw(t, "dt")))
			in := DoorInputSample{
				Now:      now,
				Rex:      rapid.SampledFrom([]Sense{SenseUnknown, SenseInactive, SenseActive}).Draw(t, "rex"),
				Hazard:   rapid.IntRange(0, 4).Draw(t, "hazard") == 0,
				Lockdown: rapid.IntRange(0, 4).Draw(t, "lockdown") == 0,
			}
			blocked := times.Mode == FailSecure && (in.Hazard || in.Lockdown)
			switch {
			case blocked:
				windowFrom = time.Time{}
			case in.Rex == SenseActive:
				windowFrom = now
			}
			want := !windowFrom.IsZero() && now.Sub(windowFrom) < window
			if got := m.Step(in).Rex; got != want {
				t.Fatalf("step %d at +%v (%+v): REX window %v, want %v (window from +%v)", i, now.Sub(t0), in, got, want, windowFrom.Sub(t0))
			}
			if want && times.Mode == FailSecure && (in.Hazard || in.Lockdown) {
				t.Fatalf("step %d: a strike's REX window runs against a hazard or lockdown", i)
			}
		}
	})
}
