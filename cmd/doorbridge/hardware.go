package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/gpio"
)

// sysRoot is where sysfs is mounted; tests point it at a directory of their
// own.
var sysRoot = "/sys"

// driverChannels lists, per driver id, every channel the config uses on it.
func driverChannels(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	add := func(l *config.Line) {
		if l != nil {
			out[l.Driver] = append(out[l.Driver], l.Channel)
		}
	}
	for i := range cfg.Doors {
		d := &cfg.Doors[i]
		add(&d.Relay)
		for _, in := range d.Inputs() {
			add(in.Line)
		}
	}
	for i := range cfg.Power {
		if cfg.Power[i].Type == config.PowerInput {
			l := cfg.Power[i].Line()
			add(&l)
		}
	}
	return out
}

// probeHardware asks every driver that can (drivers.Prober) whether its chip,
// bus or device exists on this machine and its channels name lines of it. It
// returns the problems, and notes: the drivers found, and those this machine
// has no hardware for at all. Missing hardware is a problem, not a note, when
// this machine is the bridge's (onTarget): a missing serial adapter or I2C
// bus there leaves a door without its relay.
func probeHardware(cfg *config.Config) (problems, notes []string) {
	channels := driverChannels(cfg)
	var absent []string
	found := ""
	for _, dc := range cfg.Drivers {
		spec, err := drivers.Decode(dc.Type, dc.Options)
		if err != nil {
			continue // config.Load reported it
		}
		p, ok := spec.(drivers.Prober)
		if !ok {
			continue
		}
		err = p.Probe(channels[dc.ID])
		switch {
		case errors.Is(err, drivers.ErrNotProbed):
			notes = append(notes, fmt.Sprintf("driver %q not checked: %v", dc.ID, err))
		case errors.Is(err, drivers.ErrNoHardware):
			absent = append(absent, fmt.Sprintf("driver %q: %v", dc.ID, err))
		case err != nil:
			problems = append(problems, fmt.Sprintf("driver %q: %s", dc.ID, strings.ReplaceAll(err.Error(), "\n", "; ")))
		default:
			found = dc.ID
			notes = append(notes, fmt.Sprintf("driver %q (%s): found on this machine", dc.ID, dc.Type))
		}
	}
	if why := onTarget(found); why != "" {
		for _, a := range absent {
			problems = append(problems, a+"; this machine is the bridge's ("+why+"): connect the device or fix the driver's options")
		}
		return problems, notes
	}
	for _, a := range absent {
		notes = append(notes, strings.Replace(a, ":", " not checked:", 1)+"; on the bridge's machine this is an error")
	}
	return problems, notes
}

// onTarget says why this machine looks like the bridge's, or "": another
// driver of the config found its hardware here, or it is a Raspberry Pi.
func onTarget(foundDriver string) string {
	if foundDriver != "" {
		return fmt.Sprintf("driver %q found its hardware here", foundDriver)
	}
	if gpio.DetectBoard(sysRoot) != gpio.BoardUnknown {
		return "a Raspberry Pi, by its device tree"
	}
	return ""
}

// gpioRelayWarnings says, for every door whose relay is a GPIO line, what the
// relay does while nothing drives the line: after a crash (the kernel keeps
// the level, may keep it, or the pin's pull decides) and while the Pi boots.
func gpioRelayWarnings(cfg *config.Config, rel gpio.Released) []string {
	board := gpio.DetectBoard(sysRoot)
	chips := gpioChips(cfg)
	var out []string
	for _, d := range cfg.Doors {
		chip, ok := chips[d.Relay.Driver]
		if !ok {
			continue
		}
		onPull := pullTurnsOn(d, chip, board)
		if rel.MayKeep() {
			out = append(out, persistWarning(d, rel, onPull, board))
		}
		if w := pullWarning(d, onPull, rel); w != "" {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// gpioChips maps the id of every gpio driver to its chip option.
func gpioChips(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, dc := range cfg.Drivers {
		if dc.Type != "gpio" {
			continue
		}
		o, _ := drivers.Decode(dc.Type, dc.Options)
		opts, _ := o.(gpio.Options)
		out[dc.ID] = opts.Chip
	}
	return out
}

// persistWarning: the kernel keeps a released output at its last level, or
// does not say whether it does. Where the pin's pull turns the relay on
// (onPull), strict_gpiod or a watchdog reset hands the line to that pull:
// the usual advice would switch the relay ON at every stop, so the resistor
// comes first.
func persistWarning(d config.Door, rel gpio.Released, onPull []string, board gpio.Board) string {
	what := "a crash or kill leaves the maglock powered (the door locked) until doorbridge restarts"
	if d.FailMode == config.FailSecure {
		what = "a crash or kill while the door is unlocked leaves the strike powered (the door unlocked) until doorbridge restarts"
	}
	param := "pinctrl_bcm2835.persist_gpio_outputs=n, pinctrl_rp1.persist_gpio_outputs=n on a Pi 5"
	switch board {
	case gpio.BoardPi14:
		param = "pinctrl_bcm2835.persist_gpio_outputs=n"
	case gpio.BoardPi5:
		param = "pinctrl_rp1.persist_gpio_outputs=n"
	}
	fix := "set dtparam=strict_gpiod in config.txt (or " + param + " on the kernel command line) so a released line falls to its pull, or use the hardware watchdog (watchdog.device)"
	if len(onPull) > 0 {
		fix = "fit a resistor to the off level first (" + strings.Join(onPull, "; ") + "); with strict_gpiod (or after a watchdog reset) this relay turns ON whenever doorbridge is not running; then " + fix
	}
	if !rel.Known {
		what = strings.Replace(what, "leaves", "may leave", 1)
		return fmt.Sprintf("door %q: this kernel does not say whether a released GPIO output keeps its level (%s); older Raspberry Pi kernels and a Pi 5 without gpio-ranges keep it: %s; on a Raspberry Pi %s, and check after a kill (kill -9) that the relay goes off", d.ID, rel.Source, what, fix)
	}
	return fmt.Sprintf("door %q: this kernel keeps released GPIO outputs driven (%s): %s; %s", d.ID, rel.Source, what, fix)
}

// pullTurnsOn says, for a relay on a Raspberry Pi's main GPIO chip, which
// boards' pulls switch it on while nothing drives the pin; nil when none
// does or the pull is unknown here.
func pullTurnsOn(d config.Door, chip string, board gpio.Board) []string {
	n, ok := gpio.MainChipLine(chip, d.Relay.Channel)
	if !ok {
		return nil // not a Raspberry Pi GPIO: its pull is unknown here
	}
	boards := []gpio.Board{board}
	if board == gpio.BoardUnknown {
		boards = []gpio.Board{gpio.BoardPi14, gpio.BoardPi5}
	}
	var says []string
	for _, b := range boards {
		p, _ := gpio.PowerUpPull(b, n)
		if d.Relay.ActiveLow && p.Down || !d.Relay.ActiveLow && p.Up {
			says = append(says, p.Says)
		}
	}
	return says
}

// pullWarning: the pin's pull while nothing drives it (at power-up, and
// once a released line returns to an input) turns the relay on (says).
func pullWarning(d config.Door, says []string, rel gpio.Released) string {
	if len(says) == 0 {
		return "" // the pull holds the relay off, or is unknown
	}
	when := "while the Pi boots, and whenever doorbridge is not running: after a crash, and after a clean stop too (it writes the relay off, then the kernel releases the line to its pull)"
	switch {
	case rel.Known && rel.KeepsLevel:
		when = "while the Pi boots, and after a watchdog reset, and after every stop once strict_gpiod is set"
	case !rel.Known:
		when += ", unless this kernel keeps released lines"
	}
	lock := "the maglock is powered: the door LOCKED"
	if d.FailMode == config.FailSecure {
		lock = "the strike is powered: the door UNLOCKED"
	}
	kind, other := "an active-low", "a pin the board pulls up (GPIO0-8 on a Raspberry Pi 1-4)"
	if !d.Relay.ActiveLow {
		kind, other = "an active-high", "a pin the board pulls down (GPIO9-27)"
	}
	return fmt.Sprintf("door %q: relay %s: %s, which switches %s relay board ON whenever nothing drives the pin (%s; %s); use %s or fit a resistor pulling it to the relay's off level", d.ID, d.Relay.Channel, strings.Join(says, "; "), kind, when, lock, other)
}

// whenBridgeDies says what a door's relay does once doorbridge is gone
// without switching it off (a crash, a kill), as far as the config and this
// machine tell: test-door says it instead of promising the safe state.
func whenBridgeDies(cfg *config.Config, d *config.Door, rel gpio.Released) string {
	typ, spec := relayDriver(cfg, d)
	if k, ok := spec.(drivers.LevelKeeper); ok && k.KeepsLevelOnExit() {
		return "the " + typ + " board keeps the relay as it was, until a hardware watchdog or the board's own timeout switches it off"
	}
	if typ != "gpio" {
		return "the relay goes off"
	}
	if rel.Known && rel.KeepsLevel {
		return "this kernel keeps the line as it was (" + rel.Source + "): the relay stays as it was until doorbridge restarts"
	}
	maybe := ""
	if !rel.Known {
		maybe = "this kernel does not say whether it keeps a released line (" + rel.Source + "): the relay may stay as it was until doorbridge restarts; if not, "
	}
	return maybe + pullFate(spec, d)
}

// relayDriver is the type and decoded options of the driver of a door's
// relay (an empty type if the config names no such driver).
func relayDriver(cfg *config.Config, d *config.Door) (string, drivers.Spec) {
	for _, dc := range cfg.Drivers {
		if dc.ID == d.Relay.Driver {
			spec, _ := drivers.Decode(dc.Type, dc.Options)
			return dc.Type, spec
		}
	}
	return "", nil
}

// pullFate says what a released GPIO relay line does where its pull
// decides.
func pullFate(spec drivers.Spec, d *config.Door) string {
	opts, _ := spec.(gpio.Options)
	n, ok := gpio.MainChipLine(opts.Chip, d.Relay.Channel)
	p, known := gpio.PowerUpPull(gpio.DetectBoard(sysRoot), n)
	if !ok || !known || p.Up == p.Down {
		return "the line falls to its pull: with doorbridge stopped now, check that the relay is off"
	}
	state := "off"
	if p.Up != d.Relay.ActiveLow {
		state = "ON (check-config warns)"
	}
	return fmt.Sprintf("the line falls to its pull (%s): the relay goes %s", p.Says, state)
}

// whenBridgeStops says what a door's relay does after a clean stop: written
// off, then released; on a GPIO line the kernel then decides, as after a
// crash.
func whenBridgeStops(cfg *config.Config, d *config.Door, rel gpio.Released) string {
	typ, spec := relayDriver(cfg, d)
	switch {
	case typ != "gpio":
		return "doorbridge writes the relay off first: it stays off"
	case rel.Known && rel.KeepsLevel:
		return "doorbridge writes the relay off, then this kernel keeps the line off (" + rel.Source + ")"
	case !rel.Known:
		return "doorbridge writes the relay off, then releases the line: if this kernel keeps it, off; if not, " + pullFate(spec, d)
	}
	return "doorbridge writes the relay off, then releases the line: " + pullFate(spec, d)
}
