package mcp23017

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"

	"github.com/doorbridge/doorbridge/drivers"
)

// DefaultAddress is the chip's address with A0-A2 tied low.
const DefaultAddress = 0x20

// Options are the mcp23017 driver's config keys.
type Options struct {
	// Bus is the I2C bus: "/dev/i2c-1", "1" or "I2C1".
	Bus string `koanf:"bus"`
	// Address is the chip's 7-bit I2C address, 0x20-0x27.
	Address int `koanf:"address"`
	// PullUp enables the internal pull-up of inputs opened with pull "".
	PullUp bool `koanf:"pull_up"`
}

func init() {
	drivers.Register("mcp23017", FromConfig)
}

// FromConfig is the drivers.Factory of type "mcp23017": it decodes and
// validates options without touching the bus.
func FromConfig(raw map[string]any) (drivers.Spec, error) {
	o := Options{Address: DefaultAddress}
	if err := drivers.DecodeOptions(raw, &o); err != nil {
		return nil, fmt.Errorf("mcp23017: %w", err)
	}
	if o.Bus == "" {
		return nil, fmt.Errorf(`mcp23017: bus is required (e.g. "/dev/i2c-1" or "1")`)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// Validate checks option values.
func (o Options) Validate() error {
	if o.Address < 0x20 || o.Address > 0x27 {
		return fmt.Errorf("mcp23017: address %#x: want 0x20-0x27", o.Address)
	}
	return nil
}

// Open implements drivers.Spec: it opens the I2C bus and checks the chip
// answers at the address.
func (o Options) Open(id string, log *slog.Logger) (drivers.Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("mcp23017: periph host init: %w", err)
	}
	bus, err := i2creg.Open(o.Bus)
	if err != nil {
		if m, _ := filepath.Glob("/dev/i2c-*"); len(m) == 0 {
			return nil, fmt.Errorf("mcp23017: bus %q: not found: no I2C bus (/dev/i2c-*) on this machine; enable I2C (Raspberry Pi: dtparam=i2c_arm=on) and load i2c-dev", o.Bus)
		}
		return nil, fmt.Errorf("mcp23017: bus %q: %w", o.Bus, err)
	}
	d, err := New(bus, o, log)
	if err != nil {
		_ = bus.Close()
		return nil, err
	}
	d.closer = bus
	return d, nil
}

// KeepsLevelOnExit implements drivers.LevelKeeper: the chip keeps its
// outputs when doorbridge dies.
func (o Options) KeepsLevelOnExit() bool { return true }

// CheckChannel implements drivers.ChannelChecker: a pin is 0-15, A0-A7 or
// B0-B7 (GPA0-GPB7).
func (o Options) CheckChannel(channel string, output bool) error {
	if _, err := parsePin(channel); err != nil {
		return fmt.Errorf("mcp23017: channel %q: want a pin 0-15, A0-A7 or B0-B7 (also GPA0-GPB7)", channel)
	}
	return nil
}

// Probe implements drivers.Prober: the bus must exist. The chip is not
// addressed: check-config changes nothing and reads nothing from it.
func (o Options) Probe([]string) error {
	m, _ := filepath.Glob("/dev/i2c-*")
	if len(m) == 0 {
		return fmt.Errorf("mcp23017: bus %q: no I2C bus (/dev/i2c-*; Raspberry Pi: dtparam=i2c_arm=on, modprobe i2c-dev): %w", o.Bus, drivers.ErrNoHardware)
	}
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("mcp23017: periph host init: %w", err)
	}
	bus, err := i2creg.Open(o.Bus)
	if err != nil {
		return fmt.Errorf("mcp23017: bus %q: %w (have %s)", o.Bus, err, strings.Join(m, ", "))
	}
	return bus.Close()
}

var (
	_ drivers.Spec           = Options{}
	_ drivers.LevelKeeper    = Options{}
	_ drivers.ChannelChecker = Options{}
	_ drivers.PullChecker    = Options{}
	_ drivers.Prober         = Options{}
)

// Pulls implements drivers.PullChecker: the chip has pull-ups only (GPPU);
// without a pull key the pull_up option decides.
func (o Options) Pulls() []string { return []string{"up", "none"} }
