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
		add(d.Contact)
		add(d.Rex)
		add(d.LockSense)
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
// has no hardware for at all (checked away from the bridge).
func probeHardware(cfg *config.Config) (problems, notes []string) {
	channels := driverChannels(cfg)
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
		case errors.Is(err, drivers.ErrNoHardware), errors.Is(err, drivers.ErrNotProbed):
			notes = append(notes, fmt.Sprintf("driver %q not checked: %v", dc.ID, err))
		case err != nil:
			problems = append(problems, fmt.Sprintf("driver %q: %s", dc.ID, strings.ReplaceAll(err.Error(), "\n", "; ")))
		default:
			notes = append(notes, fmt.Sprintf("driver %q (%s): found on this machine", dc.ID, dc.Type))
		}
	}
	return problems, notes
}

// gpioRelayWarnings says, for every door whose relay is a GPIO line, what the
// relay does while nothing drives the line: after a crash (the kernel keeps
// the level, or the pin's pull decides) and while the Pi boots.
func gpioRelayWarnings(cfg *config.Config, rel gpio.Released) []string {
	types := map[string]string{}
	for _, dc := range cfg.Drivers {
		types[dc.ID] = dc.Type
	}
	var out []string
	for _, d := range cfg.Doors {
		if types[d.Relay.Driver] != "gpio" {
			continue
		}
		if rel.Known && rel.KeepsLevel {
			out = append(out, persistWarning(d, rel))
		}
		if w := pullWarning(d, rel); w != "" {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// persistWarning: the kernel keeps a released output at its last level.
func persistWarning(d config.Door, rel gpio.Released) string {
	what := "a crash or kill leaves the maglock powered (the door locked) until doorbridge restarts"
	if d.FailMode == config.FailSecure {
		what = "a crash or kill while the door is unlocked leaves the strike powered (the door unlocked) until doorbridge restarts"
	}
	return fmt.Sprintf("door %q: this kernel keeps released GPIO outputs driven (%s): %s; set dtparam=strict_gpiod in config.txt (or pinctrl_bcm2835.persist_gpio_outputs=n on the kernel command line) so a released line falls to its pull, or use the hardware watchdog (watchdog.device)", d.ID, rel.Source, what)
}

// pullWarning: the pin's power-up pull on a Raspberry Pi 1-4 turns the relay
// on while nothing drives it.
func pullWarning(d config.Door, rel gpio.Released) string {
	up, ok := gpio.PiDefaultPull(d.Relay.Channel)
	if !ok || up == d.Relay.ActiveLow {
		return "" // unknown pin, or its pull holds the relay off
	}
	when := "while the Pi boots and after doorbridge stops or crashes"
	if rel.Known && rel.KeepsLevel {
		when = "while the Pi boots"
	}
	lock := "the maglock is powered: the door LOCKED"
	if d.FailMode == config.FailSecure {
		lock = "the strike is powered: the door UNLOCKED"
	}
	dir, board, other := "down", "an active-low", "GPIO0-8 (pulled up)"
	if up {
		dir, board, other = "up", "an active-high", "GPIO9-27 (pulled down)"
	}
	return fmt.Sprintf("door %q: relay %s: a Raspberry Pi 1-4 pulls %s %s at power-up, which switches %s relay board ON whenever nothing drives the pin (%s; %s); use a pin from %s or fit a resistor pulling it to the relay's off level", d.ID, d.Relay.Channel, d.Relay.Channel, dir, board, when, lock, other)
}

// whenBridgeDies says what a door's relay does once doorbridge is gone
// without switching it off (a crash, a kill), as far as the config and this
// machine tell: test-door says it instead of promising the safe state.
func whenBridgeDies(cfg *config.Config, d *config.Door, rel gpio.Released) string {
	var typ string
	var spec drivers.Spec
	for _, dc := range cfg.Drivers {
		if dc.ID == d.Relay.Driver {
			typ = dc.Type
			spec, _ = drivers.Decode(dc.Type, dc.Options)
		}
	}
	if k, ok := spec.(drivers.LevelKeeper); ok && k.KeepsLevelOnExit() {
		return "the " + typ + " board keeps the relay as it was, until a hardware watchdog or the board's own timeout switches it off"
	}
	if typ != "gpio" {
		return "the relay goes off"
	}
	if rel.Known && rel.KeepsLevel {
		return "this kernel keeps the line as it was (" + rel.Source + "): the relay stays as it was until doorbridge restarts"
	}
	up, ok := gpio.PiDefaultPull(d.Relay.Channel)
	if !ok {
		return "the line falls to its pull: with doorbridge stopped now, check that the relay is off"
	}
	on := up != d.Relay.ActiveLow
	dir, state := "down", "off"
	if up {
		dir = "up"
	}
	if on {
		state = "ON (check-config warns)"
	}
	return fmt.Sprintf("the line falls to its pull (a Raspberry Pi 1-4 pulls %s %s): the relay goes %s", d.Relay.Channel, dir, state)
}
