package bridge

import (
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
	"github.com/doorbridge/doorbridge/policy"
)

// Lock states published on B/N/<door>/state.
const (
	StateLocked   = mqttapi.StateLocked
	StateUnlocked = mqttapi.StateUnlocked
	StateOpen     = mqttapi.StateOpen
	StateJammed   = mqttapi.StateJammed
)

// door is one door's runtime state. Only the loop touches it; its relay is
// written by its own writer goroutine (relays.go).
type door struct {
	cfg    *config.Door
	mode   FailMode
	relay  *relay
	topics DoorTopics

	command        Command
	commands       uint64    // commands acted on so far: a code check's result is for the last one only (R21)
	momentaryUntil time.Time // zero: no momentary OPEN running
	io             *doorIO   // input lines and their logic (doorio.go); nil: none configured

	// asked is the lock power last handed to the relay writer, and why
	// (requested: once at least), for its report once written.
	asked     relayAsk
	requested bool
	written   bool // a write succeeded at least once
	power     bool // lock power as last written successfully
	cause     string
	// fault is set while the relay's last write failed or is overdue: the
	// power is then unknown. faultCleared is when it last recovered (the
	// driver hazard is held for relock_delay).
	fault        bool
	faultCleared time.Time
	faultErr     error

	guard *codeGuard // the guard of the door's code (codes.go); nil: no code

	// What the loop's publishState last published for the door, complete
	// (pubcache.go); published is false when it must publish again.
	published bool
	pubLast   doorPubKey
}

func newDoor(cfg *config.Door, mode FailMode, t DoorTopics) *door {
	return &door{cfg: cfg, mode: mode, topics: t, cause: string(HazardStartup.String())}
}

// powerKnown is energized without the pointer: the lock power, and whether
// it is known.
func (d *door) powerKnown() (power, known bool) { return d.power, !d.fault && d.written }

// energized is the lock power to publish: nil (unknown) while the relay
// is faulted or was never written, for it may still be powered.
func (d *door) energized() *bool {
	if d.fault || !d.written {
		return nil
	}
	p := d.power
	return &p
}

// lockedKnown is locked() to publish: nil while the power is unknown.
func (d *door) lockedKnown() *bool {
	if d.energized() == nil {
		return nil
	}
	l := d.locked()
	return &l
}

// settled reports whether the relay reached the power last asked for, or
// failed trying.
func (d *door) settled() bool { return d.fault || (d.written && d.power == d.asked.power) }

// locked reports whether the door is locked by its current power.
func (d *door) locked() bool { return d.mode.Locked(d.power) }

// state is the lock state to publish.
func (d *door) state() string {
	switch {
	case d.fault:
		return StateJammed
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
