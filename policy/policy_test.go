package policy

import (
	"testing"

	"pgregory.net/rapid"
)

func TestDecideTable(t *testing.T) {
	alarm := Hazards(0).With(HazardAlarm)
	broker := Hazards(0).With(HazardBroker)
	many := alarm.With(HazardBroker).With(HazardStartup)
	tests := []struct {
		name string
		in   Inputs
		want Decision
	}{
		// No hazard: lockdown > momentary > command > locked.
		{"fs default locked", Inputs{Mode: FailSafe}, Decision{true, "normal"}},
		{"fsec default locked", Inputs{Mode: FailSecure}, Decision{false, "normal"}},
		{"fs unlock", Inputs{Mode: FailSafe, Command: CommandUnlock}, Decision{false, "normal"}},
		{"fsec unlock", Inputs{Mode: FailSecure, Command: CommandUnlock}, Decision{true, "normal"}},
		{"fs momentary over lock", Inputs{Mode: FailSafe, Momentary: true}, Decision{false, "momentary"}},
		{"fsec momentary over lock", Inputs{Mode: FailSecure, Momentary: true}, Decision{true, "momentary"}},
		{"fs momentary with unlock", Inputs{Mode: FailSafe, Momentary: true, Command: CommandUnlock}, Decision{false, "momentary"}},
		{"fsec momentary with unlock", Inputs{Mode: FailSecure, Momentary: true, Command: CommandUnlock}, Decision{true, "momentary"}},
		{"fs lockdown over unlock", Inputs{Mode: FailSafe, Lockdown: true, Command: CommandUnlock}, Decision{true, "lockdown"}},
		{"fsec lockdown over unlock", Inputs{Mode: FailSecure, Lockdown: true, Command: CommandUnlock}, Decision{false, "lockdown"}},
		{"fs lockdown over momentary", Inputs{Mode: FailSafe, Lockdown: true, Momentary: true}, Decision{true, "lockdown"}},
		{"fsec lockdown over momentary", Inputs{Mode: FailSecure, Lockdown: true, Momentary: true}, Decision{false, "lockdown"}},
		{"fs lockdown lock", Inputs{Mode: FailSafe, Lockdown: true}, Decision{true, "lockdown"}},
		{"fsec lockdown lock", Inputs{Mode: FailSecure, Lockdown: true}, Decision{false, "lockdown"}},
		{"fs lockdown all", Inputs{Mode: FailSafe, Lockdown: true, Momentary: true, Command: CommandUnlock}, Decision{true, "lockdown"}},
		{"fsec lockdown all", Inputs{Mode: FailSecure, Lockdown: true, Momentary: true, Command: CommandUnlock}, Decision{false, "lockdown"}},
		// Hazards: power off, whatever else is asked.
		{"fs alarm", Inputs{Mode: FailSafe, Hazards: alarm}, Decision{false, "alarm"}},
		{"fsec alarm", Inputs{Mode: FailSecure, Hazards: alarm}, Decision{false, "alarm"}},
		{"fs alarm over lockdown", Inputs{Mode: FailSafe, Hazards: alarm, Lockdown: true}, Decision{false, "alarm"}},
		{"fsec alarm over momentary", Inputs{Mode: FailSecure, Hazards: alarm, Momentary: true}, Decision{false, "alarm"}},
		{"fsec broker over unlock", Inputs{Mode: FailSecure, Hazards: broker, Command: CommandUnlock}, Decision{false, "broker"}},
		{"fs broker", Inputs{Mode: FailSafe, Hazards: broker}, Decision{false, "broker"}},
		{"cause order", Inputs{Mode: FailSafe, Hazards: many}, Decision{false, "alarm"}},
		{"shutdown first", Inputs{Mode: FailSafe, Hazards: many.With(HazardShutdown)}, Decision{false, "shutdown"}},
		{"driver alone", Inputs{Mode: FailSecure, Hazards: Hazards(0).With(HazardDriver)}, Decision{false, "driver"}},
		// REX: a fail-safe door is released even in lockdown (no denied
		// exit); a fail-secure door unlocks like a momentary OPEN.
		{"fs rex", Inputs{Mode: FailSafe, Rex: true}, Decision{false, "rex"}},
		{"fs rex over lockdown", Inputs{Mode: FailSafe, Rex: true, Lockdown: true}, Decision{false, "rex"}},
		{"fs rex over momentary", Inputs{Mode: FailSafe, Rex: true, Momentary: true}, Decision{false, "rex"}},
		{"fsec rex", Inputs{Mode: FailSecure, Rex: true}, Decision{true, "rex"}},
		{"fsec lockdown over rex", Inputs{Mode: FailSecure, Rex: true, Lockdown: true}, Decision{false, "lockdown"}},
		{"fsec rex over momentary", Inputs{Mode: FailSecure, Rex: true, Momentary: true}, Decision{true, "rex"}},
		{"fs alarm over rex", Inputs{Mode: FailSafe, Rex: true, Hazards: alarm}, Decision{false, "alarm"}},
		{"fsec broker over rex", Inputs{Mode: FailSecure, Rex: true, Hazards: broker}, Decision{false, "broker"}},
		// The watchdog override (R9): power off, the rules' cause kept until
		// the loop raises the watchdog hazard.
		{"fs watchdog tripped", Inputs{Mode: FailSafe, WatchdogTripped: true}, Decision{false, "normal"}},
		{"fsec watchdog over unlock", Inputs{Mode: FailSecure, Command: CommandUnlock, WatchdogTripped: true}, Decision{false, "normal"}},
		{"fsec watchdog over momentary", Inputs{Mode: FailSecure, Momentary: true, WatchdogTripped: true}, Decision{false, "momentary"}},
		{"fsec watchdog over rex", Inputs{Mode: FailSecure, Rex: true, WatchdogTripped: true}, Decision{false, "rex"}},
		{"fs watchdog over lockdown", Inputs{Mode: FailSafe, Lockdown: true, WatchdogTripped: true}, Decision{false, "lockdown"}},
		{"fs watchdog with rex", Inputs{Mode: FailSafe, Rex: true, WatchdogTripped: true}, Decision{false, "rex"}},
		{"watchdog with hazard", Inputs{Mode: FailSafe, Hazards: alarm, WatchdogTripped: true}, Decision{false, "alarm"}},
	}
	for _, tt := range tests {
		if got := Decide(tt.in); got != tt.want {
			t.Errorf("%s: Decide(%+v) = %+v, want %+v", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestDecideExhaustive enumerates every input and checks it against the rules
// stated independently of Decide's code.
func TestDecideExhaustive(t *testing.T) {
	n := 0
	for _, mode := range []FailMode{FailSafe, FailSecure} {
		for hz := Hazards(0); hz < 1<<NumHazards; hz++ {
			for bits := 0; bits < 32; bits++ {
				in := Inputs{Mode: mode, Hazards: hz, Lockdown: bits&1 != 0, Momentary: bits&2 != 0, Command: Command(bits >> 2 & 1), Rex: bits&8 != 0,
					WatchdogTripped: bits&16 != 0}
				got := Decide(in)
				n++
				locked := mode.Locked(got.Power)
				if in.WatchdogTripped {
					// The override: power off, and otherwise the same decision.
					in.WatchdogTripped = false
					if want := Decide(in); got.Power || got.Cause != want.Cause {
						t.Fatalf("%+v with the watchdog tripped: %+v (without: %+v)", in, got, want)
					}
					continue
				}
				switch {
				case hz != 0:
					if got.Power {
						t.Fatalf("%+v: hazard active but lock powered", in)
					}
					if mode == FailSecure && !locked || mode == FailSafe && locked {
						t.Fatalf("%+v: hazard left door in the wrong state (locked=%v)", in, locked)
					}
				case in.Rex && mode == FailSafe:
					if got.Power || locked || got.Cause != CauseRex {
						t.Fatalf("%+v: REX did not release a fail-safe door (%+v)", in, got)
					}
				case in.Lockdown:
					if !locked {
						t.Fatalf("%+v: lockdown left door unlocked", in)
					}
				case in.Rex:
					if locked || got.Cause != CauseRex {
						t.Fatalf("%+v: REX did not unlock a fail-secure door (%+v)", in, got)
					}
				case in.Momentary:
					if locked {
						t.Fatalf("%+v: momentary open left door locked", in)
					}
				default:
					if locked != (in.Command == CommandLock) {
						t.Fatalf("%+v: door does not follow its command (locked=%v)", in, locked)
					}
				}
			}
		}
	}
	if n != 2*(1<<NumHazards)*32 {
		t.Fatalf("enumerated %d inputs", n)
	}
}

func genInputs() *rapid.Generator[Inputs] {
	return rapid.Custom(func(t *rapid.T) Inputs {
		return Inputs{
			Mode:      FailMode(rapid.IntRange(0, 1).Draw(t, "mode")),
			Hazards:   Hazards(rapid.IntRange(0, 1<<NumHazards-1).Draw(t, "hazards")),
			Lockdown:  rapid.Bool().Draw(t, "lockdown"),
			Momentary: rapid.Bool().Draw(t, "momentary"),
			Command:   Command(rapid.IntRange(0, 1).Draw(t, "command")),
			Rex:       rapid.Bool().Draw(t, "rex"),
			// Rarely: the watchdog override hides every other rule.
			WatchdogTripped: rapid.IntRange(0, 9).Draw(t, "watchdog") == 0,
		}
	})
}

// A REX never powers a fail-safe lock, and never powers any lock while a
// hazard is active (R1, R11).
func TestPropertyRexNeverPowersAgainstSafety(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInputs().Draw(t, "in")
		in.Rex = true
		got := Decide(in)
		if in.Mode == FailSafe && got.Power {
			t.Fatalf("%+v: REX powered a maglock", in)
		}
		if in.Hazards.Any() && got.Power {
			t.Fatalf("%+v: REX powered a lock during a hazard", in)
		}
		// Pressing REX only ever moves a fail-safe door towards unlocked.
		without := in
		without.Rex = false
		if in.Mode == FailSafe && Decide(without).Power == false && got.Power {
			t.Fatalf("%+v: REX locked a released door", in)
		}
	})
}

func TestPropertyHazardMeansPowerOff(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInputs().Draw(t, "in")
		h := Hazard(rapid.IntRange(0, int(NumHazards)-1).Draw(t, "hazard"))
		in.Hazards = in.Hazards.With(h)
		if Decide(in).Power {
			t.Fatalf("hazard %v active, lock powered: %+v", h, in)
		}
	})
}

func TestPropertyHazardNeverUnlocksFailSecure(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInputs().Draw(t, "in")
		in.Mode = FailSecure
		before := Decide(Inputs{Mode: in.Mode, Lockdown: in.Lockdown, Momentary: in.Momentary, Command: in.Command, Rex: in.Rex})
		after := Decide(in)
		if in.Hazards.Any() && !FailSecure.Locked(after.Power) {
			t.Fatalf("hazards %v unlocked a fail-secure door (before: %+v)", in.Hazards, before)
		}
		// Adding hazards never turns power on, for any door.
		if after.Power && !before.Power {
			t.Fatalf("hazards %v powered a lock", in.Hazards)
		}
	})
}

func TestPropertyFollowsCommandWithoutHazardOrLockdown(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInputs().Draw(t, "in")
		in.Hazards, in.Lockdown, in.Momentary, in.Rex, in.WatchdogTripped = 0, false, false, false, false
		got := Decide(in)
		if in.Mode.Locked(got.Power) != (in.Command == CommandLock) {
			t.Fatalf("%+v: lock does not follow its command", in)
		}
	})
}

func TestPropertyRefusalNeverAllowsPowerDuringHazard(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mode := FailMode(rapid.IntRange(0, 1).Draw(t, "mode"))
		hz := Hazards(rapid.IntRange(1, 1<<NumHazards-1).Draw(t, "hazards"))
		// LOCKDOWN OFF asks for nothing new: it is tested in the table.
		req := Request(rapid.IntRange(0, int(RequestLockdownOn)).Draw(t, "req"))
		// The state the request would lead to once hazards clear.
		in := Inputs{Mode: mode}
		switch req {
		case RequestUnlock:
			in.Command = CommandUnlock
		case RequestOpen:
			in.Momentary = true
		case RequestLockdownOn:
			in.Lockdown = true
		}
		wouldPower := Decide(in).Power
		refused := Refusal(mode, hz, req) != ""
		if wouldPower != refused {
			t.Fatalf("%v on %v during %v: refused=%v, would power=%v", req, mode, hz, refused, wouldPower)
		}
	})
}

func TestRefusalTable(t *testing.T) {
	alarm := Hazards(0).With(HazardAlarm)
	tests := []struct {
		mode    FailMode
		hz      Hazards
		req     Request
		refused bool
	}{
		{FailSafe, alarm, RequestUnlock, false}, // UNLOCK of a fail-safe door is always accepted
		{FailSafe, alarm, RequestOpen, false},
		{FailSafe, alarm, RequestLock, true},
		{FailSafe, alarm, RequestLockdownOn, true},
		{FailSafe, alarm, RequestLockdownOff, false},
		{FailSecure, alarm, RequestUnlock, true},
		{FailSecure, alarm, RequestOpen, true},
		{FailSecure, alarm, RequestLock, false},
		{FailSecure, alarm, RequestLockdownOn, false},
		{FailSecure, 0, RequestUnlock, false},
		{FailSafe, 0, RequestLock, false},
	}
	for _, tt := range tests {
		got := Refusal(tt.mode, tt.hz, tt.req)
		if (got != "") != tt.refused {
			t.Errorf("Refusal(%v, %v, %v) = %q, want refused=%v", tt.mode, tt.hz, tt.req, got, tt.refused)
		}
	}
}

func TestHazardNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, h := range AllHazards() {
		if seen[h.String()] || h.String() == "" {
			t.Fatalf("hazard name %q duplicated or empty", h)
		}
		seen[h.String()] = true
	}
	all := Hazards(1<<NumHazards - 1)
	if got := len(all.Names()); got != int(NumHazards) {
		t.Fatalf("Names() of all hazards has %d entries", got)
	}
}

func BenchmarkDecide256Doors(b *testing.B) {
	doors := make([]Inputs, 256)
	for i := range doors {
		doors[i] = Inputs{Mode: FailMode(i % 2), Command: Command(i / 2 % 2), Momentary: i%7 == 0}
	}
	b.ReportAllocs()
	var on int
	for b.Loop() {
		for i := range doors {
			if Decide(doors[i]).Power {
				on++
			}
		}
	}
	_ = on
}
