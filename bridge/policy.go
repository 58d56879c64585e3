package bridge

// The safety decision lives in package policy (pure, no project imports).
// These aliases keep the bridge's and cmd's names while call sites move.

import "github.com/doorbridge/doorbridge/policy"

type (
	FailMode = policy.FailMode
	Hazard   = policy.Hazard
	Hazards  = policy.Hazards
	Command  = policy.Command
	Inputs   = policy.Inputs
	Decision = policy.Decision
	Request  = policy.Request

	Sense            = policy.Sense
	DoorInputTimes   = policy.DoorInputTimes
	DoorInputSample  = policy.DoorInputSample
	DoorInputOutcome = policy.DoorInputOutcome
	DoorInputs       = policy.DoorInputs
)

const (
	FailSafe   = policy.FailSafe
	FailSecure = policy.FailSecure

	HazardShutdown         = policy.HazardShutdown
	HazardWatchdog         = policy.HazardWatchdog
	HazardAlarm            = policy.HazardAlarm
	HazardAlarmSupervision = policy.HazardAlarmSupervision
	HazardPower            = policy.HazardPower
	HazardBroker           = policy.HazardBroker
	HazardStartup          = policy.HazardStartup
	HazardDriver           = policy.HazardDriver
	numHazards             = policy.NumHazards

	CommandLock   = policy.CommandLock
	CommandUnlock = policy.CommandUnlock

	CauseNormal    = policy.CauseNormal
	CauseLockdown  = policy.CauseLockdown
	CauseMomentary = policy.CauseMomentary
	CauseRex       = policy.CauseRex

	RequestLock        = policy.RequestLock
	RequestUnlock      = policy.RequestUnlock
	RequestOpen        = policy.RequestOpen
	RequestLockdownOn  = policy.RequestLockdownOn
	RequestLockdownOff = policy.RequestLockdownOff

	SenseUnknown  = policy.SenseUnknown
	SenseInactive = policy.SenseInactive
	SenseActive   = policy.SenseActive

	EventForcedOpen     = policy.EventForcedOpen
	EventHeldOpen       = policy.EventHeldOpen
	EventReleaseFailure = policy.EventReleaseFailure
)

// ParseFailMode maps a config value to a FailMode.
func ParseFailMode(s string) (FailMode, error) { return policy.ParseFailMode(s) }

// AllHazards lists every hazard, in cause order.
func AllHazards() []Hazard { return policy.AllHazards() }

// Decide returns a door's lock power: see policy.Decide.
func Decide(in Inputs) Decision { return policy.Decide(in) }

// Refusal returns why req must be refused: see policy.Refusal.
func Refusal(m FailMode, hz Hazards, req Request) string { return policy.Refusal(m, hz, req) }

// SenseOf maps a line level to a Sense: see policy.SenseOf.
func SenseOf(level, activeLow bool, err error) Sense { return policy.SenseOf(level, activeLow, err) }

// NewDoorInputs returns a door's input logic: see policy.NewDoorInputs.
func NewDoorInputs(t DoorInputTimes) *DoorInputs { return policy.NewDoorInputs(t) }
