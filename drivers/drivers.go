// Package drivers defines the small interfaces every relay and input driver
// implements, and the registry that builds a driver from its config entry.
//
// Drivers know nothing of doors, MQTT or safety policy: they drive lines.
// A line level is the electrical level (true = high). Whether high means
// "lock powered" is decided by the door's active_low flag, not here.
package drivers

import (
	"errors"
	"log/slog"
)

// Output is one output line (a relay coil, through whatever board drives it).
// Implementations must be safe for concurrent use: the control loop writes
// lines, and the emergency watchdog may write them (only ever to the off level)
// from another goroutine.
type Output interface {
	// Set drives the line to level (true = high).
	Set(level bool) error
	// Level reports the level last set successfully.
	Level() bool
}

// Input is one input line (a door contact, an exit button, a lock sensor).
type Input interface {
	// Read returns the current level (true = high).
	Read() (bool, error)
}

// Cached is implemented by inputs whose Read never waits on a board: it
// returns a value the driver already holds (a poller's cache, memory, a
// kernel line). The bridge reads other inputs off its control loop, with a
// deadline, so that a board that hangs cannot stall it.
type Cached interface {
	Cached()
}

// InputOptions are the electrical options of an input line.
type InputOptions struct {
	// Pull is "", "up", "down" or "none".
	Pull string
}

// Driver is an opened driver instance: a chip, a board, a simulated bank.
type Driver interface {
	// OpenOutput claims channel as an output whose first level is initial.
	// A driver must never let the line show another level first: a fresh
	// line that glitches on can blip a strike open at boot.
	OpenOutput(channel string, initial bool) (Output, error)
	// Close releases the driver's resources. Lines are not changed by Close;
	// callers write the off level first.
	Close() error
}

// InputOpener is implemented by drivers that have input lines.
type InputOpener interface {
	OpenInput(channel string, opts InputOptions) (Input, error)
}

// Flusher is implemented by drivers that batch writes (for example the sim
// driver's state file). The control loop calls Flush after a round of Sets.
type Flusher interface {
	Flush() error
}

// LevelKeeper is implemented by driver specs whose outputs keep their level
// when the process dies (an I2C expander, a Modbus board). check-config warns
// about such doors: only a hardware watchdog or the board's own
// communication-loss timeout turns them off after a crash.
type LevelKeeper interface {
	KeepsLevelOnExit() bool
}

// ChannelChecker is implemented by driver specs that can tell, without the
// hardware, that a channel cannot exist on any board of their type. The config
// loader calls it for every line (output true for a relay), so check-config
// rejects "pin37" on a machine without GPIO.
type ChannelChecker interface {
	CheckChannel(channel string, output bool) error
}

// PullChecker is implemented by driver specs whose input lines take only
// some of the pulls of InputOptions.Pull ("up", "down", "none"). The config
// loader refuses any other, so a pull the board cannot set is a config error
// rather than an input that never opens (a power input lost for ever).
type PullChecker interface {
	// Pulls lists the pulls an input line of this driver takes.
	Pulls() []string
}

// Prober is implemented by driver specs that can check, on the machine that
// runs the bridge, that their chip, bus or device exists and that channels
// name lines of it, without claiming or changing anything (check-config). An
// error wrapping ErrNoHardware means this machine has no hardware of the kind
// at all: probably not the bridge, so nothing could be checked.
type Prober interface {
	Probe(channels []string) error
}

// ErrNoHardware is wrapped by Probe errors when the machine has no hardware of
// the driver's kind.
var ErrNoHardware = errors.New("not on this machine")

// ErrNotProbed is wrapped by Probe errors for hardware check-config does not
// contact (a board on the network).
var ErrNotProbed = errors.New("not checked by check-config")

// ErrUnknownChannel is returned when a channel does not exist on a driver.
var ErrUnknownChannel = errors.New("unknown channel")

// ErrChannelBusy is returned when a channel is opened twice.
var ErrChannelBusy = errors.New("channel already in use")

// Spec is a decoded and validated driver config entry, ready to open the
// hardware. Decoding never touches hardware, so check-config can validate a
// config on a machine without the boards.
type Spec interface {
	// Open opens the driver configured as id. log is already the driver's
	// own: its records carry driver=id (the caller scopes it, once), so a
	// driver does not add its id again.
	Open(id string, log *slog.Logger) (Driver, error)
}
