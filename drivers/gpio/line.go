package gpio

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/doorbridge/doorbridge/drivers"
)

// levelReader is implemented by lines whose reads can fail visibly (the
// character device). periph's gpio.PinIn.Read has no error: a pin without
// ReadLevel is assumed to read correctly.
type levelReader interface {
	ReadLevel() (gpio.Level, error)
}

// output is an output line on a gpio.PinIO.
type output struct {
	pin gpio.PinIO

	mu    sync.Mutex
	level bool
}

// newOutput claims pin as an output whose first level is initial: the first
// and only call before returning is Out(initial).
func newOutput(pin gpio.PinIO, initial bool) (*output, error) {
	if err := pin.Out(gpio.Level(initial)); err != nil {
		return nil, fmt.Errorf("claim as output at %s: %w", gpio.Level(initial), err)
	}
	return &output{pin: pin, level: initial}, nil
}

// Set implements drivers.Output.
func (o *output) Set(level bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.pin.Out(gpio.Level(level)); err != nil {
		return fmt.Errorf("gpio: line %s: set %s: %w", o.pin, gpio.Level(level), err)
	}
	o.level = level
	return nil
}

// Level implements drivers.Output.
func (o *output) Level() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.level
}

// input is a debounced input line on a gpio.PinIO.
type input struct {
	pin gpio.PinIO
	now func() time.Time

	mu sync.Mutex
	db debouncer
}

// newInput configures pin as an input with pull and reads its first level.
func newInput(pin gpio.PinIO, pull gpio.Pull, debounce time.Duration, now func() time.Time) (*input, error) {
	if err := pin.In(pull, gpio.NoEdge); err != nil {
		return nil, fmt.Errorf("claim as input (pull %s): %w", pull, err)
	}
	in := &input{pin: pin, now: now}
	first, err := in.raw()
	if err != nil {
		return nil, fmt.Errorf("first read: %w", err)
	}
	in.db = debouncer{window: debounce, stable: first}
	return in, nil
}

// Cached implements drivers.Cached: Read never waits on a board.
func (in *input) Cached() {}

// Read implements drivers.Input: it returns the debounced level.
func (in *input) Read() (bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	l, err := in.raw()
	if err != nil {
		return in.db.stable, fmt.Errorf("gpio: line %s: read: %w", in.pin, err)
	}
	return in.db.observe(l, in.now()), nil
}

func (in *input) raw() (bool, error) {
	if r, ok := in.pin.(levelReader); ok {
		l, err := r.ReadLevel()
		return bool(l), err
	}
	return bool(in.pin.Read()), nil
}

// debouncer accepts a new level once it has been seen, on every read, for at
// least window. The caller polls: a level that lasts less than the caller's
// poll period may be missed, so poll at least as often as window.
type debouncer struct {
	window time.Duration
	stable bool

	pending   bool      // a different level was seen
	candidate bool      // that level
	since     time.Time // when it was first seen
}

// observe feeds one raw sample taken at now and returns the debounced level.
func (d *debouncer) observe(raw bool, now time.Time) bool {
	switch {
	case raw == d.stable:
		d.pending = false
	case d.window <= 0:
		d.stable, d.pending = raw, false
	case !d.pending || d.candidate != raw:
		d.pending, d.candidate, d.since = true, raw, now
	case now.Sub(d.since) >= d.window:
		d.stable, d.pending = raw, false
	}
	return d.stable
}

var (
	_ drivers.Output = (*output)(nil)
	_ drivers.Input  = (*input)(nil)
)
