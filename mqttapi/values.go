package mqttapi

import (
	"slices"

	"github.com/doorbridge/doorbridge/policy"
)

// Payloads.
const (
	On      = "ON"
	Off     = "OFF"
	Unknown = "None" // resets a Home Assistant binary sensor to unknown
	Online  = "online"
	Offline = "offline"
	Reset   = "RESET" // on AlarmReset
	Press   = "PRESS" // on Republish
)

// Door commands on DoorSet (plain, or the "action" of the JSON form).
const (
	Lock   = "LOCK"
	Unlock = "UNLOCK"
	Open   = "OPEN" // momentary: unlocked for unlock_time
)

// Lock states on DoorState.
const (
	StateLocked   = "LOCKED"
	StateUnlocked = "UNLOCKED"
	StateOpen     = "OPEN" // unlocked by a momentary OPEN
	StateJammed   = "JAMMED"
)

// LockStates lists every lock state.
func LockStates() []string {
	return []string{StateLocked, StateUnlocked, StateOpen, StateJammed}
}

// Event types on DoorEvent.
const (
	EventUnlocked         = "unlocked"
	EventLocked           = "locked"
	EventOpened           = "opened"
	EventRejectedCode     = "rejected_code"
	EventReleasedByHazard = "released_by_hazard"
	EventRelocked         = "relocked"
	EventLockout          = "lockout"
	EventForcedOpen       = policy.EventForcedOpen
	EventHeldOpen         = policy.EventHeldOpen
	EventReleaseFailure   = policy.EventReleaseFailure
)

// EventTypes lists every event type, in the order Home Assistant shows them.
func EventTypes() []string {
	return []string{
		EventUnlocked, EventLocked, EventOpened, EventRejectedCode, EventReleasedByHazard,
		EventRelocked, EventLockout, EventForcedOpen, EventHeldOpen, EventReleaseFailure,
	}
}

// Causes lists every value of DoorCause, in the order Home Assistant shows
// them: the policy's own causes and every hazard's name.
func Causes() []string {
	out := []string{policy.CauseNormal, policy.CauseLockdown}
	for _, h := range []policy.Hazard{policy.HazardAlarm, policy.HazardBroker, policy.HazardPower,
		policy.HazardStartup, policy.HazardShutdown, policy.HazardWatchdog, policy.HazardDriver} {
		out = append(out, h.String())
	}
	out = append(out, policy.CauseRex, policy.HazardAlarmSupervision.String(), policy.CauseMomentary)
	for _, h := range policy.AllHazards() {
		if !slices.Contains(out, h.String()) {
			out = append(out, h.String()) // a new hazard is a cause at once
		}
	}
	return out
}
