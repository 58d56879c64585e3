package policy

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const (
	budget = 10 * time.Minute
	delay  = 5 * time.Second
)

func hazardsOf(hs ...Hazard) Hazards {
	var s Hazards
	for _, h := range hs {
		s = s.With(h)
	}
	return s
}

func TestBatteryHoldTable(t *testing.T) {
	power := hazardsOf(HazardPower)
	tests := []struct {
		name         string
		hz           Hazards
		mode         FailMode
		powerRelease bool
		onBattery    time.Duration
		budget       time.Duration
		hold         bool
	}{
		{"maglock on its own battery holds", power, FailSafe, false, 0, budget, true},
		{"holds until just before the budget", power, FailSafe, false, budget - time.Nanosecond, budget, true},
		{"released at the budget", power, FailSafe, false, budget, budget, false},
		{"released after the budget", power, FailSafe, false, time.Hour, budget, false},
		{"power_release true: released at once", power, FailSafe, true, 0, budget, false},
		{"never a strike, even misconfigured", power, FailSecure, false, 0, budget, false},
		{"any other hazard releases", power.With(HazardAlarm), FailSafe, false, 0, budget, false},
		{"broker with power releases", power.With(HazardBroker), FailSafe, false, 0, budget, false},
		{"no power hazard: nothing to hold", hazardsOf(HazardAlarm), FailSafe, false, 0, budget, false},
		{"no hazard: nothing to hold", 0, FailSafe, false, 0, budget, false},
		{"a larger budget is capped at R8's 10 minutes", power, FailSafe, false, MaxBatteryHold, time.Hour, false},
		{"a smaller budget is kept", power, FailSafe, false, time.Minute, time.Minute, false},
		{"zero budget: no hold", power, FailSafe, false, 0, 0, false},
	}
	for _, tt := range tests {
		if got := BatteryHold(tt.hz, tt.mode, tt.powerRelease, tt.onBattery, tt.budget); got != tt.hold {
			t.Errorf("%s: BatteryHold(%v, %v, %v, %v, %v) = %v", tt.name, tt.hz, tt.mode, tt.powerRelease, tt.onBattery, tt.budget, got)
		}
	}
}

func TestDriverHazardTable(t *testing.T) {
	tests := []struct {
		name    string
		fault   bool
		cleared time.Time
		now     time.Time
		want    bool
	}{
		{"never faulted", false, time.Time{}, t0, false},
		{"jammed", true, time.Time{}, t0, true},
		{"jammed again after a recovery", true, t0.Add(-time.Hour), t0, true},
		{"recovered just now", false, t0, t0, true},
		{"recovering", false, t0.Add(-delay + time.Nanosecond), t0, true},
		{"recovered relock_delay ago", false, t0.Add(-delay), t0, false},
		{"recovered long ago", false, t0.Add(-time.Hour), t0, false},
	}
	for _, tt := range tests {
		if got := DriverHazard(tt.fault, tt.cleared, tt.now, delay); got != tt.want {
			t.Errorf("%s: DriverHazard = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMomentaryEndsTable(t *testing.T) {
	until := t0.Add(5 * time.Second)
	tests := []struct {
		name  string
		until time.Time
		now   time.Time
		hz    Hazards
		ends  bool
	}{
		{"none running", time.Time{}, t0, hazardsOf(HazardAlarm), false},
		{"running", until, t0, 0, false},
		{"running just before expiry", until, until.Add(-time.Nanosecond), 0, false},
		{"ends at expiry", until, until, 0, true},
		{"ends after expiry", until, until.Add(time.Hour), 0, true},
		{"a hazard ends it at once", until, t0, hazardsOf(HazardBroker), true},
		{"the driver hazard ends it", until, t0, hazardsOf(HazardDriver), true},
	}
	for _, tt := range tests {
		if got := MomentaryEnds(tt.until, tt.now, tt.hz); got != tt.ends {
			t.Errorf("%s: MomentaryEnds = %v, want %v", tt.name, got, tt.ends)
		}
	}
}

// TestDoorHazardsExhaustive enumerates every global hazard set and door
// against the rules stated independently of DoorHazards' code.
func TestDoorHazardsExhaustive(t *testing.T) {
	cleareds := []time.Time{{}, t0, t0.Add(-delay + time.Nanosecond), t0.Add(-delay), t0.Add(-time.Hour)}
	batteries := []time.Duration{0, time.Minute, budget - time.Nanosecond, budget, time.Hour}
	n := 0
	for global := Hazards(0); global < 1<<NumHazards; global++ {
		if global.Has(HazardDriver) {
			continue // never global: the loop adds it per door
		}
		for _, mode := range []FailMode{FailSafe, FailSecure} {
			for _, release := range []bool{false, true} {
				for _, fault := range []bool{false, true} {
					for _, cleared := range cleareds {
						for _, onBattery := range batteries {
							d := DoorState{Mode: mode, PowerRelease: release, Fault: fault, FaultCleared: cleared}
							env := Env{Now: t0, RelockDelay: delay, OnBattery: onBattery, BatteryBudget: budget}
							got := DoorHazards(global, d, env)
							n++
							driver := fault || !cleared.IsZero() && t0.Sub(cleared) < delay
							held := global == hazardsOf(HazardPower) && mode == FailSafe && !release && onBattery < budget
							want := global
							if held {
								want = 0
							}
							if driver {
								want = want.With(HazardDriver)
							}
							if got != want {
								t.Fatalf("DoorHazards(%v, %+v, %+v) = %v, want %v", global, d, env, got, want)
							}
						}
					}
				}
			}
		}
	}
	if n != (1<<(NumHazards-1))*2*2*2*len(cleareds)*len(batteries) {
		t.Fatalf("enumerated %d doors", n)
	}
}

func TestHoldTable(t *testing.T) {
	alarm, broker := hazardsOf(HazardAlarm), hazardsOf(HazardBroker)
	type step struct {
		at   time.Duration // since t0
		raw  Hazards
		want Hazards
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"healthy stays healthy", []step{{0, 0, 0}, {time.Hour, 0, 0}}},
		{"a raw hazard takes effect at once", []step{{0, alarm, alarm}}},
		{"held until relock_delay of health", []step{{0, alarm, alarm}, {time.Second, 0, alarm}, {time.Second + delay - time.Nanosecond, 0, alarm}, {time.Second + delay, 0, 0}}},
		{"health counts from the first evaluation that saw none", []step{{0, alarm, alarm}, {time.Hour, 0, alarm}, {time.Hour + delay - 1, 0, alarm}, {time.Hour + delay, 0, 0}}},
		{"a hazard in between starts it over", []step{{0, alarm, alarm}, {time.Second, 0, alarm}, {4 * time.Second, broker, broker}, {5 * time.Second, 0, broker}, {5*time.Second + delay - 1, 0, broker}, {5*time.Second + delay, 0, 0}}},
		{"the raw set replaces the held one", []step{{0, alarm, alarm}, {time.Second, 0, alarm}, {2 * time.Second, broker, broker}}},
		{"cleared stays cleared", []step{{0, alarm, alarm}, {0, 0, alarm}, {delay, 0, 0}, {time.Hour, 0, 0}}},
	}
	for _, tt := range tests {
		var h Held
		for i, s := range tt.steps {
			h = Hold(h, s.raw, t0.Add(s.at), delay)
			if h.Hazards != s.want {
				t.Errorf("%s: step %d (at %v, raw %v): held %v, want %v", tt.name, i, s.at, s.raw, h.Hazards, s.want)
				break
			}
		}
	}
}

func TestHoldZeroDelayClearsAtOnce(t *testing.T) {
	h := Hold(Held{}, hazardsOf(HazardAlarm), t0, 0)
	if h = Hold(h, 0, t0, 0); h.Hazards.Any() {
		t.Fatalf("relock_delay 0: still held %v", h.Hazards)
	}
}
