package mqttapi

import (
	"slices"
	"strings"
)

// Bridge topics, under B/N. Retained unless marked otherwise.
const (
	Availability  = "availability"        // online/offline; also the last will
	Heartbeat     = "heartbeat"           // the bridge's own round-trip probe, not retained
	LockdownSet   = "lockdown/set"        // ON/OFF command
	LockdownState = "lockdown/state"      // ON/OFF
	AlarmState    = "alarm/state"         // ON/OFF: fire alarm active
	AlarmLatched  = "alarm/latched"       // ON/OFF: release latched (restores the latch at start)
	AlarmAttrs    = "alarm/attributes"    // JSON {"reason": why AlarmState is ON, "" when OFF}
	AlarmReset    = "alarm/reset"         // RESET command
	PowerState    = "power/state"         // ON = mains OK
	ProblemState  = "problem/state"       // ON while any hazard is active
	Hazards       = "hazards"             // JSON list of active hazards
	Notice        = "notice"              // last notice (why a reset was refused...)
	Error         = "error"               // bridge-level errors, not retained
	Republish     = "republish"           // PRESS command: republish discovery and state
	Events        = "events"              // audit events, not retained
	DrillOverdue  = "drill_overdue/state" // ON when no release drill in 31 days
	DrillLast     = "drill/last"          // RFC 3339 time of the last release drill
)

// Door topics, under B/N/<door id>. Retained unless marked otherwise.
const (
	DoorState          = "state"           // LOCKED, UNLOCKED, OPEN, JAMMED
	DoorSet            = "set"             // LOCK, UNLOCK, OPEN or JSON {"action", "code"}; command
	DoorAttributes     = "attributes"      // JSON
	DoorCause          = "cause"           // one of Causes()
	DoorEnergized      = "energized"       // ON/OFF lock power, None while unknown
	DoorEvent          = "event"           // JSON {"event_type": one of EventTypes()}; never retained
	DoorError          = "error"           // rejected commands; not retained
	DoorContact        = "contact"         // ON = door open, None while unreadable
	DoorForced         = "forced"          // ON = forced open, until it closes
	DoorHeld           = "held"            // ON = held open, until it closes
	DoorReleaseFailure = "release_failure" // ON = maglock sensed locked with its power off
)

// bridgeTopics lists every bridge topic above.
var bridgeTopics = []string{
	Availability, Heartbeat, LockdownSet, LockdownState, AlarmState, AlarmLatched, AlarmAttrs, AlarmReset,
	PowerState, ProblemState, Hazards, Notice, Error, Republish, Events, DrillOverdue, DrillLast,
}

// BridgeTopics lists every bridge topic under B/N.
func BridgeTopics() []string { return slices.Clone(bridgeTopics) }

// BridgeLeaves returns the first levels of the bridge's topics, sorted. A
// door's topics are B/N/<door id>/..., so a door may not take one of these
// as its id: door "lockdown" would make its ON a building-wide lockdown,
// door "alarm" would flip Home Assistant's fire alarm sensor.
func BridgeLeaves() []string {
	var out []string
	for _, t := range bridgeTopics {
		leaf, _, _ := strings.Cut(t, "/")
		out = append(out, leaf)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// IsBridgeLeaf reports whether id is one of BridgeLeaves.
func IsBridgeLeaf(id string) bool { return slices.Contains(BridgeLeaves(), id) }

// Prefix is B/N, the start of every topic of bridge id under base.
func Prefix(base, bridgeID string) string { return base + "/" + bridgeID }
