package policy

import "time"

// DoorState is what the rules need to know of one door to tell which
// hazards apply to it.
type DoorState struct {
	Mode FailMode
	// PowerRelease: losing mains releases the door at once (config
	// power_release, true unless a fail-safe lock's supply has its own
	// battery).
	PowerRelease bool
	// Fault: the door's relay cannot be written (JAMMED).
	Fault bool
	// FaultCleared is when the relay last worked again after a fault (zero:
	// never faulted).
	FaultCleared time.Time
}

// Env is what every door shares besides the hazards in effect.
type Env struct {
	Now         time.Time
	RelockDelay time.Duration
	// OnBattery is how long mains have been lost, the budget already used
	// included (zero when mains are present).
	OnBattery time.Duration
	// BatteryBudget is the longest a door with PowerRelease false holds on
	// battery (config.MaxHoldOnBattery; R8 caps it at MaxBatteryHold).
	BatteryBudget time.Duration
}

// DoorHazards returns the hazards that apply to door d, given those in
// effect for every door (Hold): without the power hazard while the battery
// hold lasts (R8), with the driver hazard while its relay is jammed or
// recovering (R22).
func DoorHazards(global Hazards, d DoorState, env Env) Hazards {
	hz := global
	if BatteryHold(hz, d.Mode, d.PowerRelease, env.OnBattery, env.BatteryBudget) {
		hz = hz.Without(HazardPower)
	}
	if DriverHazard(d.Fault, d.FaultCleared, env.Now, env.RelockDelay) {
		hz = hz.With(HazardDriver)
	}
	return hz
}

// MaxBatteryHold is the longest R8 lets a lock hold on battery after mains
// are lost (NFPA 72: secondary power may hold egress locks 10 minutes).
const MaxBatteryHold = 10 * time.Minute

// BatteryHold reports whether a door keeps its lock powered through a mains
// loss (R8): only a fail-safe door with power_release false (its lock
// supply has its own battery), only when mains loss is the sole hazard, and
// only for the first budget on battery, never more than MaxBatteryHold. Any
// other hazard releases it at once.
func BatteryHold(hz Hazards, m FailMode, powerRelease bool, onBattery, budget time.Duration) bool {
	return m == FailSafe && !powerRelease && hz == Hazards(0).With(HazardPower) &&
		onBattery < min(budget, MaxBatteryHold)
}

// DriverHazard reports whether the driver hazard holds a door (R22, R1): its
// relay cannot be written, or works again but less than relockDelay ago.
func DriverHazard(fault bool, cleared, now time.Time, relockDelay time.Duration) bool {
	return fault || Recovering(cleared, now, relockDelay)
}

// Recovering reports whether a relay that works again since cleared (zero:
// never faulted) is still held by the driver hazard at now.
func Recovering(cleared, now time.Time, relockDelay time.Duration) bool {
	return !cleared.IsZero() && now.Sub(cleared) < relockDelay
}

// MomentaryEnds reports whether a momentary OPEN running until until (zero:
// none) must end now (R13, R6, R1): at its expiry, or at once when any
// hazard applies to the door. Nothing is resumed after a hazard.
func MomentaryEnds(until, now time.Time, hz Hazards) bool {
	return !until.IsZero() && (hz.Any() || !now.Before(until))
}
