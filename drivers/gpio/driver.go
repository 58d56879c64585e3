package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/doorbridge/doorbridge/drivers"
)

// Lines resolves channels to GPIO lines. The Linux character device
// implements it; tests implement it with periph gpiotest pins.
type Lines interface {
	// Line returns the line named by channel, not yet configured. Its
	// String() identifies the physical line, so two channels naming the same
	// line ("GPIO17" and "17") return lines with the same String(). The
	// driver's first call on an output is Out(initial), on an input In.
	Line(channel string) (gpio.PinIO, error)
	// Close releases every line handed out and the chips.
	Close() error
}

// Driver is an opened gpio driver.
type Driver struct {
	opts  Options
	lines Lines
	// now is the clock of input debouncing (replaced by tests).
	now func() time.Time
	// mono is the kernel's CLOCK_MONOTONIC, the clock of edge timestamps
	// (replaced by tests).
	mono func() time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	claimed map[string]string // line String() -> channel that claimed it
	closed  bool
}

// New returns a driver over lines with typed options (what tests call).
func New(o Options, lines Lines) *Driver {
	return &Driver{opts: o, lines: lines, now: time.Now, mono: monotonic, log: slog.New(slog.DiscardHandler), claimed: map[string]string{}}
}

// OpenOutput implements drivers.Driver. The line's first call is
// Out(initial): on the character device that requests the line as an output
// already driving initial.
func (d *Driver) OpenOutput(channel string, initial bool) (drivers.Output, error) {
	p, release, err := d.claim(channel)
	if err != nil {
		return nil, err
	}
	o, err := newOutput(p, initial)
	if err != nil {
		release()
		return nil, fmt.Errorf("gpio: channel %q: line %s: %w", channel, p, err)
	}
	return o, nil
}

// OpenInput implements drivers.InputOpener. opts.Pull is "" (leave the bias
// as it is), "up", "down" or "none" (bias disabled).
func (d *Driver) OpenInput(channel string, opts drivers.InputOptions) (drivers.Input, error) {
	pull, err := parsePull(opts.Pull)
	if err != nil {
		return nil, fmt.Errorf("gpio: channel %q: %w", channel, err)
	}
	p, release, err := d.claim(channel)
	if err != nil {
		return nil, err
	}
	in, err := newInput(p, pull, d.opts.Debounce, d.now, d.mono, d.log)
	if err != nil {
		release()
		return nil, fmt.Errorf("gpio: channel %q: line %s: %w", channel, p, err)
	}
	return in, nil
}

// claim resolves channel and marks its line as used.
func (d *Driver) claim(channel string) (gpio.PinIO, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, fmt.Errorf("gpio: channel %q: driver closed", channel)
	}
	p, err := d.lines.Line(channel)
	if err != nil {
		return nil, nil, err
	}
	key := p.String()
	if other, busy := d.claimed[key]; busy {
		return nil, nil, fmt.Errorf("gpio: channel %q: line %s already opened as channel %q: %w", channel, key, other, drivers.ErrChannelBusy)
	}
	d.claimed[key] = channel
	release := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.claimed, key)
	}
	return p, release, nil
}

// Close implements drivers.Driver: it releases the lines to the kernel (see
// the package documentation for what a released line does).
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.lines.Close(); err != nil {
		return fmt.Errorf("gpio: close: %w", err)
	}
	return nil
}

// parsePull maps drivers.InputOptions.Pull to periph's gpio.Pull.
func parsePull(s string) (gpio.Pull, error) {
	switch s {
	case "":
		return gpio.PullNoChange, nil
	case "none":
		return gpio.Float, nil
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	}
	return gpio.PullNoChange, errors.New(`pull "` + s + `": want "", "up", "down" or "none"`)
}

var (
	_ drivers.Driver      = (*Driver)(nil)
	_ drivers.InputOpener = (*Driver)(nil)
)
