package gpio

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
)

// DefaultDebounce is the input debounce used when the debounce option is
// absent.
const DefaultDebounce = 20 * time.Millisecond

// maxDebounce bounds the debounce option: a longer value is a typo that would
// hide exit button presses.
const maxDebounce = 5 * time.Second

// Options are the gpio driver's config keys.
type Options struct {
	// Chip selects the GPIO chip by name ("gpiochip0"), number ("0"), device
	// path ("/dev/gpiochip0") or label. Empty searches every chip for line
	// names; offset channels then need exactly one chip on the machine.
	Chip string `koanf:"chip"`
	// Debounce is how long an input level must be seen unchanged before Read
	// reports it. Zero disables debouncing.
	Debounce time.Duration `koanf:"debounce"`
}

func init() {
	drivers.Register("gpio", FromConfig)
}

// FromConfig is the drivers.Factory of type "gpio": it decodes and validates
// options without touching hardware.
func FromConfig(raw map[string]any) (drivers.Spec, error) {
	o := Options{Debounce: DefaultDebounce}
	if err := drivers.DecodeOptions(raw, &o); err != nil {
		return nil, fmt.Errorf("gpio: %w", err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// Validate checks option values.
func (o Options) Validate() error {
	if o.Debounce < 0 || o.Debounce > maxDebounce {
		return fmt.Errorf("gpio: debounce %s: want 0 to %s", o.Debounce, maxDebounce)
	}
	return nil
}

// Open implements drivers.Spec: it opens the GPIO chip(s) and logs what it
// found. It fails when the chip does not exist or cannot be opened.
func (o Options) Open(id string, log *slog.Logger) (drivers.Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lines, err := openChips(o.Chip, "doorbridge/"+id, log)
	if err != nil {
		return nil, err
	}
	d := New(o, lines)
	d.log = log
	return d, nil
}

// KeepsLevelOnExit implements drivers.LevelKeeper. It is false: whether a
// released line keeps its level depends on the running kernel, not on the
// config; ReleasedOutputs reads it and check-config warns per door with what
// it means (a Raspberry Pi keeps the level by default).
func (o Options) KeepsLevelOnExit() bool { return false }

var (
	_ drivers.Spec        = Options{}
	_ drivers.LevelKeeper = Options{}
)

var (
	_ drivers.ChannelChecker = Options{}
	_ drivers.PullChecker    = Options{}
	_ drivers.Prober         = Options{}
)

// Pulls implements drivers.PullChecker: the line request sets any bias
// (the chip may still refuse it; OpenInput then says so).
func (o Options) Pulls() []string { return []string{"up", "down", "none"} }
