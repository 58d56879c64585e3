package policy

import (
	"fmt"
	"strings"
)

// FailMode says what a door does when its lock loses power.
type FailMode uint8

const (
	// FailSafe (maglock): power on = locked, off = unlocked. For egress.
	FailSafe FailMode = iota
	// FailSecure (electric strike): power on = unlocked, off = locked.
	FailSecure
)

// The config values of fail_mode (config.FailSafe and config.FailSecure; a
// test in bridge checks that they agree).
const (
	failSafeName   = "fail_safe"
	failSecureName = "fail_secure"
)

// ParseFailMode maps a config value to a FailMode.
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case failSafeName:
		return FailSafe, nil
	case failSecureName:
		return FailSecure, nil
	}
	return 0, fmt.Errorf("unknown fail mode %q", s)
}

func (m FailMode) String() string {
	if m == FailSecure {
		return failSecureName
	}
	return failSafeName
}

// LockedPower is the lock power that holds a door of mode m locked.
func (m FailMode) LockedPower() bool { return m == FailSafe }

// Locked reports whether a door of mode m is locked when its power is p.
func (m FailMode) Locked(power bool) bool { return power == m.LockedPower() }

// Hazard is one condition under which every lock loses power.
type Hazard uint8

// Hazards, in the order that picks the cause shown when several are active:
// the most urgent and most explanatory first.
const (
	HazardShutdown         Hazard = iota // SIGTERM/SIGINT or a fatal error
	HazardWatchdog                       // the control loop stopped responding
	HazardAlarm                          // an alarm source is active, unknown, or the release is latched
	HazardAlarmSupervision               // an alarm source stopped proving it is alive
	HazardPower                          // mains power lost
	HazardBroker                         // MQTT connection lost or heartbeat overdue
	HazardStartup                        // from start until the link is first healthy (connected, subscribed, heartbeat round trip)
	HazardDriver                         // this door's driver cannot set its relay (or recovered less than relock_delay ago)
	NumHazards                           // how many hazards there are; not a hazard
)

var hazardNames = [NumHazards]string{
	"shutdown", "watchdog", "alarm", "alarm_supervision", "power", "broker", "startup", "driver",
}

func (h Hazard) String() string {
	if h < NumHazards {
		return hazardNames[h]
	}
	return fmt.Sprintf("hazard(%d)", uint8(h))
}

// AllHazards lists every hazard, in cause order.
func AllHazards() []Hazard {
	out := make([]Hazard, NumHazards)
	for i := range out {
		out[i] = Hazard(i)
	}
	return out
}

// Hazards is a set of active hazards.
type Hazards uint16

// With returns the set with h added.
func (s Hazards) With(h Hazard) Hazards { return s | 1<<h }

// Without returns the set with h removed.
func (s Hazards) Without(h Hazard) Hazards { return s &^ (1 << h) }

// Has reports whether h is in the set.
func (s Hazards) Has(h Hazard) bool { return s&(1<<h) != 0 }

// Any reports whether any hazard is active.
func (s Hazards) Any() bool { return s != 0 }

// Primary returns the hazard that explains the state best, and false when the
// set is empty.
func (s Hazards) Primary() (Hazard, bool) {
	for h := Hazard(0); h < NumHazards; h++ {
		if s.Has(h) {
			return h, true
		}
	}
	return 0, false
}

// Names lists the active hazards' names in cause order (never nil).
func (s Hazards) Names() []string {
	out := []string{}
	for h := Hazard(0); h < NumHazards; h++ {
		if s.Has(h) {
			out = append(out, h.String())
		}
	}
	return out
}

func (s Hazards) String() string { return strings.Join(s.Names(), ",") }

// Command is the last LOCK or UNLOCK a door accepted. The zero value is
// CommandLock: a door is locked after start.
type Command uint8

const (
	CommandLock Command = iota
	CommandUnlock
)

// Causes a door's state can have besides a hazard's name.
const (
	CauseNormal    = "normal"    // following its last command (locked after start)
	CauseLockdown  = "lockdown"  // lockdown switch on
	CauseMomentary = "momentary" // inside a momentary OPEN
	CauseRex       = "rex"       // unlocked locally by the exit button (REX)
)

// Inputs is everything the decision depends on for one door.
type Inputs struct {
	Mode      FailMode
	Hazards   Hazards // global hazards plus this door's own
	Lockdown  bool
	Momentary bool // a momentary OPEN is running
	Command   Command
	// Rex: the exit button (REX) asked for the door, locally. A fail-safe
	// door is then released (power off is always allowed, and egress is
	// never denied, not even by lockdown); a fail-secure door unlocks only
	// without hazards and outside lockdown, like a momentary OPEN.
	Rex bool
	// WatchdogTripped: the in-process watchdog has forced every relay off
	// and the loop has not yet taken the watchdog hazard over (R9). No lock
	// is powered over the watchdog's emergency off.
	WatchdogTripped bool
}

// Decision is the lock power for one door and why.
type Decision struct {
	Power bool
	Cause string
}

// Decide returns a door's lock power (R1, R11, R12, R13). While any hazard
// is active power is off. Otherwise, highest priority first: a REX on a
// fail-safe door (unlocked: no denied exit, R12) > lockdown (locked) > a REX
// on a fail-secure door (unlocked) > a momentary OPEN (unlocked) > the last
// command. A tripped watchdog turns the power off whatever the rest says;
// the cause stays the rules' own until the loop raises HazardWatchdog (R9).
func Decide(in Inputs) Decision {
	d := decide(in)
	if in.WatchdogTripped {
		d.Power = false
	}
	return d
}

func decide(in Inputs) Decision {
	if h, ok := in.Hazards.Primary(); ok {
		return Decision{Power: false, Cause: h.String()}
	}
	locked := in.Mode.LockedPower()
	switch {
	case in.Rex && in.Mode == FailSafe:
		return Decision{Power: false, Cause: CauseRex}
	case in.Lockdown:
		return Decision{Power: locked, Cause: CauseLockdown}
	case in.Rex:
		return Decision{Power: !locked, Cause: CauseRex}
	case in.Momentary:
		return Decision{Power: !locked, Cause: CauseMomentary}
	case in.Command == CommandUnlock:
		return Decision{Power: !locked, Cause: CauseNormal}
	default:
		return Decision{Power: locked, Cause: CauseNormal}
	}
}

// Request is something a user asks of a door.
type Request uint8

const (
	RequestLock Request = iota
	RequestUnlock
	RequestOpen
	RequestLockdownOn
	RequestLockdownOff
)

var requestNames = [...]string{"LOCK", "UNLOCK", "OPEN", "LOCKDOWN ON", "LOCKDOWN OFF"}

func (r Request) String() string {
	if int(r) < len(requestNames) {
		return requestNames[r]
	}
	return fmt.Sprintf("request(%d)", uint8(r))
}

// Refusal returns why req must be refused for a door of mode m while hz is
// active, or "" when it may be accepted (R17). A request is refused when it would
// power the lock during a hazard: nothing is queued for after it. UNLOCK and
// OPEN of a fail-safe door, and LOCK of a fail-secure door, are always
// accepted: they never power a lock.
func Refusal(m FailMode, hz Hazards, req Request) string {
	h, active := hz.Primary()
	if !active {
		return ""
	}
	var powers bool
	switch req {
	case RequestLock, RequestLockdownOn:
		powers = m.LockedPower()
	case RequestUnlock, RequestOpen:
		powers = !m.LockedPower()
	case RequestLockdownOff:
		powers = false
	}
	if !powers {
		return ""
	}
	return fmt.Sprintf("%s refused: hazard %q is active and %s would power a %s lock", req, h, req, m)
}
