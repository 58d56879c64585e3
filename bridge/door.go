package bridge

import (
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/policy"
)

// Lock states published on B/N/<door>/state.
const (
	StateLocked   = "LOCKED"
	StateUnlocked = "UNLOCKED"
	StateOpen     = "OPEN" // unlocked by a momentary OPEN, or the contact reports the door open
	StateJammed   = "JAMMED"
)

// door is one door's runtime state. Only the loop touches it, except that the
// watchdog may call off() from its own goroutine.
type door struct {
	cfg    *config.Door
	mode   FailMode
	out    drivers.Output
	drv    drivers.Driver
	topics DoorTopics

	command        Command
	momentaryUntil time.Time // zero: no momentary OPEN running
	io             *doorIO   // input lines and their logic (doorio.go); nil: none configured

	written bool // power was written at least once by the loop
	power   bool // lock power as last written successfully
	cause   string
	// fault is set while the driver cannot set the relay; faultCleared is
	// when it last recovered (the driver hazard is held for relock_delay).
	fault        bool
	faultCleared time.Time
	faultErr     error

	guard *codeGuard // the guard of the door's code (codes.go); nil: no code
}

func newDoor(cfg *config.Door, mode FailMode, out drivers.Output, drv drivers.Driver, t DoorTopics) *door {
	return &door{cfg: cfg, mode: mode, out: out, drv: drv, topics: t, cause: string(HazardStartup.String())}
}

// level is the line level that gives lock power p on this door's relay.
func (d *door) level(p bool) bool { return p != d.cfg.Relay.ActiveLow }

// off drives the relay to lock power off. It is the watchdog's emergency path.
func (d *door) off() error { return d.out.Set(d.level(false)) }

// locked reports whether the door is locked by its current power.
func (d *door) locked() bool { return d.mode.Locked(d.power) }

// state is the lock state to publish.
func (d *door) state() string {
	switch {
	case d.fault:
		return StateJammed
	case d.io != nil && d.io.out.Open:
		return StateOpen
	case d.locked():
		return StateLocked
	case d.cause == CauseMomentary:
		return StateOpen
	default:
		return StateUnlocked
	}
}

// recovering reports whether d's relay works again but less than
// relockDelay ago: the driver hazard still holds the door.
func (d *door) recovering(now time.Time, relockDelay time.Duration) bool {
	return policy.Recovering(d.faultCleared, now, relockDelay)
}
