package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// step is one reading in a door-input scenario: advance the time by
// dt, take the reading, and compare what it means.
type step struct {
	dt time.Duration
	in DoorInputSample // Now is set by the test

	events []string // exactly these events (nil: none)
	rex    bool
	end    bool // EndMomentary
	flags  string
}

// flags renders an outcome's flags compactly: "open forced held rf" for
// whichever are set, "?" for an unknown contact.
func flags(o DoorInputOutcome) string {
	var f []string
	if !o.ContactKnown {
		f = append(f, "?")
	}
	for _, x := range []struct {
		on   bool
		name string
	}{{o.Open, "open"}, {o.Forced, "forced"}, {o.Held, "held"}, {o.ReleaseFailure, "rf"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, " ")
}

var (
	closed = SenseInactive
	open   = SenseActive
)

// locked samples for a fail-safe door (powered = locked) and a fail-secure
// door (unpowered = locked), with the contact reading c.
func fsLocked(c Sense) DoorInputSample { return DoorInputSample{Contact: c, Power: true, Locked: true} }
func fsecLocked(c Sense) DoorInputSample {
	return DoorInputSample{Contact: c, Power: false, Locked: true}
}

func with(s DoorInputSample, f func(*DoorInputSample)) DoorInputSample { f(&s); return s }

func TestDoorInputs(t *testing.T) {
	fsTimes := DoorInputTimes{Mode: FailSafe, RexTime: 30 * time.Second, UnlockTime: 5 * time.Second, HeldOpenTime: 30 * time.Second,
		LockSenseDelay: 2 * time.Second}
	fsecTimes := fsTimes
	fsecTimes.Mode = FailSecure
	ms := time.Millisecond
	rex := func(s DoorInputSample) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.Rex = SenseActive })
	}
	hazard := func(s DoorInputSample) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.Hazard, s.Released, s.Power, s.Locked = true, true, false, false })
	}
	unlocked := func(s DoorInputSample) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.Power, s.Locked = !s.Power, false })
	}
	momentary := func(s DoorInputSample) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.Momentary = true })
	}
	sense := func(s DoorInputSample, ls Sense) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.LockSense = ls })
	}
	powerOff := func(s DoorInputSample) DoorInputSample {
		return with(s, func(s *DoorInputSample) { s.Power, s.Locked = false, false })
	}

	tests := []struct {
		name  string
		times DoorInputTimes
		steps []step
	}{
		{"forced open while locked, cleared on close", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
			{dt: 100 * ms, in: fsLocked(open), flags: "open forced"},
			{dt: 100 * ms, in: fsLocked(closed)},
		}},
		{"forced open on a fail-secure door", fsecTimes, []step{
			{in: fsecLocked(closed)},
			{dt: 100 * ms, in: fsecLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
		}},
		{"door open at start is not forced", fsTimes, []step{
			{in: fsLocked(open), flags: "open"},
			{dt: time.Second, in: fsLocked(open), flags: "open"},
		}},
		{"unlocked door opens: no event", fsTimes, []step{
			{in: unlocked(fsLocked(closed))},
			{dt: 100 * ms, in: unlocked(fsLocked(open)), flags: "open"},
		}},
		{"momentary OPEN: no event, early relock after open and close", fsecTimes, []step{
			{in: fsecLocked(closed)},
			{dt: 100 * ms, in: momentary(fsecLocked(closed))}, // the strike is not powered yet
			{dt: 100 * ms, in: momentary(unlocked(fsecLocked(open))), flags: "open"},
			{dt: 500 * ms, in: momentary(unlocked(fsecLocked(open))), flags: "open"},
			{dt: 500 * ms, in: momentary(unlocked(fsecLocked(closed))), end: true},
			{dt: 100 * ms, in: fsecLocked(closed)},
		}},
		{"momentary without a passage runs its course", fsecTimes, []step{
			{in: momentary(unlocked(fsecLocked(closed)))},
			{dt: time.Second, in: momentary(unlocked(fsecLocked(closed)))},
			{dt: 4 * time.Second, in: fsecLocked(closed)},
		}},
		{"a momentary that ended resets the passage", fsecTimes, []step{
			{in: momentary(unlocked(fsecLocked(open))), flags: "open"},
			{dt: 5 * time.Second, in: fsecLocked(open), flags: "open"}, // OPEN over, still open
			{dt: 100 * ms, in: fsecLocked(closed)},                     // closing now ends nothing
		}},
		{"REX shunts forced open and releases a fail-safe door for rex_time", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: rex(fsLocked(open)), rex: true, flags: "open"}, // pressed and pushed at once
			{dt: 100 * ms, in: fsLocked(open), rex: true, flags: "open"},
			{dt: 29 * time.Second, in: unlocked(fsLocked(closed)), rex: true},
			{dt: 800 * ms, in: unlocked(fsLocked(closed)), rex: true},
			{dt: 100 * ms, in: unlocked(fsLocked(closed))}, // 30 s after the last reading of the press
		}},
		{"REX held keeps the window open", fsTimes, []step{
			{in: rex(fsLocked(closed)), rex: true},
			{dt: 40 * time.Second, in: rex(unlocked(fsLocked(closed))), rex: true},
			{dt: 29 * time.Second, in: unlocked(fsLocked(closed)), rex: true},
			{dt: 1 * time.Second, in: unlocked(fsLocked(closed))},
		}},
		{"REX releases a fail-safe door during a hazard too", fsTimes, []step{
			{in: hazard(fsLocked(closed))},
			{dt: 100 * ms, in: rex(hazard(fsLocked(closed))), rex: true},
			{dt: 10 * time.Second, in: fsLocked(closed), rex: true}, // hazard gone: still in the window
		}},
		{"REX unlocks a fail-secure door for unlock_time", fsecTimes, []step{
			{in: fsecLocked(closed)},
			{dt: 100 * ms, in: rex(fsecLocked(closed)), rex: true},
			{dt: 4900 * ms, in: unlocked(fsecLocked(closed)), rex: true},
			{dt: 100 * ms, in: unlocked(fsecLocked(closed))},
		}},
		{"no REX unlock of a fail-secure door during a hazard; the shunt still works", fsecTimes, []step{
			{in: with(fsecLocked(closed), func(s *DoorInputSample) { s.Hazard = true })},
			{dt: 100 * ms, in: rex(with(fsecLocked(closed), func(s *DoorInputSample) { s.Hazard = true }))},
			// mechanical egress: opened by the handle, not forced
			{dt: 500 * ms, in: with(fsecLocked(open), func(s *DoorInputSample) { s.Hazard = true }), flags: "open"},
			// the hazard clears within unlock_time: nothing was queued
			{dt: 100 * ms, in: fsecLocked(open), flags: "open"},
		}},
		{"a hazard ends a running fail-secure REX unlock", fsecTimes, []step{
			{in: rex(fsecLocked(closed)), rex: true},
			{dt: 100 * ms, in: with(unlocked(fsecLocked(closed)), func(s *DoorInputSample) { s.Hazard = true })},
			{dt: 100 * ms, in: fsecLocked(closed)},
		}},
		{"no REX unlock of a fail-secure door in lockdown", fsecTimes, []step{
			{in: rex(with(fsecLocked(closed), func(s *DoorInputSample) { s.Lockdown = true }))},
			{dt: 100 * ms, in: fsecLocked(closed)},
		}},
		{"the REX shunt ends with its window", fsecTimes, []step{
			{in: rex(with(fsecLocked(closed), func(s *DoorInputSample) { s.Lockdown = true }))},
			{dt: 5100 * ms, in: fsecLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
		}},
		{"forced open suppressed while a hazard released the door", fsTimes, []step{
			{in: hazard(fsLocked(closed))},
			{dt: 100 * ms, in: hazard(fsLocked(open)), flags: "open"},
			{dt: 100 * ms, in: hazard(fsLocked(closed))},
		}},
		{"a hazard releasing a forced door clears the flag", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
			{dt: 100 * ms, in: hazard(fsLocked(open)), flags: "open"},
			{dt: 100 * ms, in: fsLocked(open), flags: "open"},
		}},
		{"held open after held_open_time, cleared on close", fsTimes, []step{
			{in: unlocked(fsLocked(closed))},
			{dt: time.Second, in: unlocked(fsLocked(open)), flags: "open"},
			{dt: 30 * time.Second, in: unlocked(fsLocked(open)), flags: "open"},
			{dt: 100 * ms, in: unlocked(fsLocked(open)), events: []string{EventHeldOpen}, flags: "open held"},
			{dt: 10 * time.Second, in: unlocked(fsLocked(open)), flags: "open held"},
			{dt: 100 * ms, in: unlocked(fsLocked(closed))},
			{dt: 100 * ms, in: unlocked(fsLocked(open)), flags: "open"},
		}},
		{"forced and then held", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
			{dt: 31 * time.Second, in: fsLocked(open), events: []string{EventHeldOpen}, flags: "open forced held"},
		}},
		{"held open suppressed while released; its clock starts again after", fsTimes, []step{
			{in: hazard(fsLocked(open)), flags: "open"},
			{dt: time.Minute, in: hazard(fsLocked(open)), flags: "open"},
			{dt: 100 * ms, in: fsLocked(open), flags: "open"},
			{dt: 30 * time.Second, in: fsLocked(open), flags: "open"},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventHeldOpen}, flags: "open held"},
			{dt: 100 * ms, in: hazard(fsLocked(open)), flags: "open"},
		}},
		{"an unknown contact changes nothing", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(SenseUnknown), flags: "?"},
			{dt: 100 * ms, in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
			{dt: 100 * ms, in: fsLocked(SenseUnknown), flags: "? forced"},
			{dt: 31 * time.Second, in: fsLocked(SenseUnknown), flags: "? forced"},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventHeldOpen}, flags: "open forced held"},
		}},
		{"opened while unknown is forced once known", fsTimes, []step{
			{in: fsLocked(closed)},
			{dt: 100 * ms, in: fsLocked(SenseUnknown), flags: "?"},
			{dt: 100 * ms, in: fsLocked(open), events: []string{EventForcedOpen}, flags: "open forced"},
		}},
		{"no contact at all: no door events", fsTimes, []step{
			{in: fsLocked(SenseUnknown), flags: "?"},
			{dt: time.Minute, in: fsLocked(SenseUnknown), flags: "?"},
		}},
		{"release failure: sensed locked 2 s after power off, until it clears", fsTimes, []step{
			{in: sense(fsLocked(closed), open)},
			{dt: time.Second, in: sense(powerOff(fsLocked(closed)), open)},
			{dt: 2 * time.Second, in: sense(powerOff(fsLocked(closed)), open)},
			{dt: 100 * ms, in: sense(powerOff(fsLocked(closed)), open), events: []string{EventReleaseFailure}, flags: "rf"},
			{dt: 10 * time.Second, in: sense(powerOff(fsLocked(closed)), open), flags: "rf"},
			{dt: 100 * ms, in: sense(powerOff(fsLocked(closed)), SenseUnknown), flags: "rf"},
			{dt: 100 * ms, in: sense(powerOff(fsLocked(closed)), closed)},
			// timed from the power going off, not from the sense: at once
			{dt: 100 * ms, in: sense(powerOff(fsLocked(closed)), open), events: []string{EventReleaseFailure}, flags: "rf"},
			{dt: 100 * ms, in: sense(fsLocked(closed), open)},
		}},
		{"release failure cleared when the lock is powered again", fsTimes, []step{
			{in: sense(powerOff(fsLocked(closed)), open)},
			{dt: 2100 * ms, in: sense(powerOff(fsLocked(closed)), open), events: []string{EventReleaseFailure}, flags: "rf"},
			{dt: 100 * ms, in: sense(fsLocked(closed), open)},
			{dt: 2100 * ms, in: sense(powerOff(fsLocked(closed)), open)}, // power off again just now
			{dt: 2100 * ms, in: sense(powerOff(fsLocked(closed)), open), events: []string{EventReleaseFailure}, flags: "rf"},
		}},
		{"a released lock sensed unlocked is fine", fsTimes, []step{
			{in: sense(powerOff(fsLocked(closed)), closed)},
			{dt: time.Minute, in: sense(powerOff(fsLocked(closed)), closed)},
		}},
		{"lock sense is not supervised on a fail-secure door", fsecTimes, []step{
			{in: sense(fsecLocked(closed), open)},
			{dt: time.Minute, in: sense(fsecLocked(closed), open)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			m := NewDoorInputs(tt.times)
			for i, st := range tt.steps {
				now = now.Add(st.dt)
				in := st.in
				in.Now = now
				got := m.Step(in)
				if !slices.Equal(got.Events, st.events) || got.Rex != st.rex || got.EndMomentary != st.end || flags(got) != st.flags {
					t.Fatalf("step %d (%+v):\n got events %v rex %v end %v flags %q\nwant events %v rex %v end %v flags %q",
						i, in, got.Events, got.Rex, got.EndMomentary, flags(got), st.events, st.rex, st.end, st.flags)
				}
			}
		})
	}
}

func TestSenseOf(t *testing.T) {
	for _, tt := range []struct {
		level, activeLow bool
		err              error
		want             Sense
	}{
		{true, false, nil, SenseActive},
		{false, false, nil, SenseInactive},
		{false, true, nil, SenseActive},
		{true, true, nil, SenseInactive},
		{true, false, errTest, SenseUnknown},
	} {
		if got := SenseOf(tt.level, tt.activeLow, tt.err); got != tt.want {
			t.Errorf("SenseOf(%v, %v, %v) = %v, want %v", tt.level, tt.activeLow, tt.err, got, tt.want)
		}
	}
}

var errTest = testError("input broken")

type testError string

func (e testError) Error() string { return string(e) }
