package policy

// This file is the door-input logic: what a door's contact, exit button
// (REX) and lock sense mean, given its lock. It decides the REX window that
// feeds Inputs.Rex (R11) and the early end of a momentary OPEN. It is pure: a
// state machine that takes one reading at a time with the time it was taken
// and returns events and flags, so every case is a table test on a fake
// clock. The loop feeds it and acts on the outcome (bridge/doorio.go).

import "time"

// Sense is one reading of an input, after active_low is applied.
type Sense uint8

const (
	// SenseUnknown: no such input, or it cannot be read. An unknown input
	// never raises or clears anything: there is no new information.
	SenseUnknown Sense = iota
	// SenseInactive: door closed, button released, lock sensed unlocked.
	SenseInactive
	// SenseActive: door open, button pressed, lock sensed locked.
	SenseActive
)

// SenseOf maps a line level to a Sense: high is active unless activeLow.
func SenseOf(level, activeLow bool, err error) Sense {
	switch {
	case err != nil:
		return SenseUnknown
	case level != activeLow:
		return SenseActive
	default:
		return SenseInactive
	}
}

// Door-input event types, published on B/N/<door>/event.
const (
	EventForcedOpen     = "forced_open"
	EventHeldOpen       = "held_open"
	EventReleaseFailure = "release_failure"
)

// DoorInputTimes are a door's input timings.
type DoorInputTimes struct {
	Mode FailMode
	// RexTime: how long a REX keeps a fail-safe door released after the
	// button lets go (≥ 30 s in a valid config).
	RexTime time.Duration
	// UnlockTime: how long a REX unlocks a fail-secure door.
	UnlockTime time.Duration
	// HeldOpenTime: how long the door may stand open before it is held open.
	HeldOpenTime time.Duration
	// LockSenseDelay: how long a fail-safe lock may still be sensed locked
	// after its power went off before that is a release failure (R16;
	// config.LockSenseDelay).
	LockSenseDelay time.Duration
}

// DoorInputSample is one reading of a door's inputs and what the loop knows
// of its lock at that moment.
type DoorInputSample struct {
	Now       time.Time
	Contact   Sense // active = door open
	Rex       Sense // active = exit button pressed
	LockSense Sense // active = lock sensed locked
	// Power is the lock power as last written.
	Power bool
	// Locked: the door is locked by its power and fail mode.
	Locked bool
	// Momentary: a momentary OPEN is running (an unlock window).
	Momentary bool
	// Hazard: a hazard applies to the door. It never lets a REX power a
	// fail-secure lock (R1), and it ends such a REX unlock at once.
	Hazard bool
	// Lockdown is on: a fail-secure door's REX does not unlock it either.
	Lockdown bool
	// Released: a hazard has released the door (a fail-safe door with a
	// hazard). Forced and held-open doors are not reported meanwhile.
	Released bool
}

// DoorInputOutcome is what a reading means.
type DoorInputOutcome struct {
	// Events that happened with this reading, in order.
	Events []string
	// Rex: the REX window is running; the policy's Inputs.Rex.
	Rex bool
	// EndMomentary: the door was opened and closed during a momentary
	// OPEN: the passage is over, relock now.
	EndMomentary bool

	ContactKnown   bool // the contact was read; false: its state is unknown
	Open           bool // the door stands open (only when ContactKnown)
	Forced         bool // forced open, until it closes
	Held           bool // held open, until it closes
	ReleaseFailure bool // a fail-safe lock still sensed locked with its power off
}

// DoorInputs is the state machine of one door's inputs. The zero value is
// not usable: use NewDoorInputs.
type DoorInputs struct {
	t DoorInputTimes

	contactKnown bool // a contact reading was ever known
	open         bool // the last known contact reading
	heldFrom     time.Time
	momentOpened bool // the door stood open during the running momentary OPEN

	rexUntil   time.Time // REX unlock window (zero: none)
	shuntUntil time.Time // forced-open shunt after a REX

	powerOff      bool
	powerOffSince time.Time

	forced, held, releaseFailure bool
}

// NewDoorInputs returns the input logic of a door with timings t.
func NewDoorInputs(t DoorInputTimes) *DoorInputs { return &DoorInputs{t: t} }

// Step takes one reading. Readings must come in time order.
func (s *DoorInputs) Step(in DoorInputSample) DoorInputOutcome {
	var out DoorInputOutcome
	now := in.Now

	// REX first: a press in this very reading shunts the contact opening in
	// it. A fail-safe door is released for rex_time after the button lets
	// go, whatever else is going on: that is only power off. A fail-secure
	// door unlocks for its unlock_time, but never against a hazard or
	// lockdown, and a hazard ends its running unlock (nothing is resumed).
	blocked := s.t.Mode == FailSecure && (in.Hazard || in.Lockdown)
	window := s.t.RexTime
	if s.t.Mode == FailSecure {
		window = s.t.UnlockTime
	}
	if in.Rex == SenseActive {
		s.shuntUntil = now.Add(window)
		if !blocked {
			s.rexUntil = now.Add(window)
		}
	}
	if blocked {
		s.rexUntil = time.Time{}
	}
	out.Rex = now.Before(s.rexUntil)
	shunted := out.Rex || now.Before(s.shuntUntil)

	if !in.Momentary {
		s.momentOpened = false
	}
	if in.Contact != SenseUnknown {
		open := in.Contact == SenseActive
		if s.contactKnown && open && !s.open {
			// Opened. Forced unless something let it open: an unlocked
			// lock, a momentary OPEN, a REX, or a hazard's release.
			if in.Locked && !in.Momentary && !shunted && !in.Released {
				s.forced = true
				out.Events = append(out.Events, EventForcedOpen)
			}
		}
		if open && in.Momentary {
			s.momentOpened = true
		}
		if s.contactKnown && !open && s.open && s.momentOpened {
			out.EndMomentary = true
			s.momentOpened = false
		}
		s.open, s.contactKnown = open, true

		// Held open: the clock runs while the door stands open and no
		// hazard has released it, so a door propped open during a fire
		// gets the full held_open_time after the hazard ends.
		if open && !in.Released {
			if s.heldFrom.IsZero() {
				s.heldFrom = now
			}
			if !s.held && now.Sub(s.heldFrom) > s.t.HeldOpenTime {
				s.held = true
				out.Events = append(out.Events, EventHeldOpen)
			}
		} else {
			s.heldFrom, s.held = time.Time{}, false
		}
		if !open || in.Released {
			s.forced = false
		}
	}

	// Lock sense (R16): a maglock still sensed locked more than 2 s after
	// its power went off did not release. Reported until the sense says
	// unlocked or the lock is meant to be powered again.
	if s.t.Mode == FailSafe {
		if in.Power {
			s.powerOff = false
		} else if !s.powerOff {
			s.powerOff, s.powerOffSince = true, now
		}
		switch {
		case in.Power || in.LockSense == SenseInactive:
			s.releaseFailure = false
		case in.LockSense == SenseActive && !s.releaseFailure && now.Sub(s.powerOffSince) > s.t.LockSenseDelay:
			s.releaseFailure = true
			out.Events = append(out.Events, EventReleaseFailure)
		}
	}

	out.ContactKnown = in.Contact != SenseUnknown
	out.Open = out.ContactKnown && s.open
	out.Forced, out.Held, out.ReleaseFailure = s.forced, s.held, s.releaseFailure
	return out
}
