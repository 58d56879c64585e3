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

// edgeWaiter is implemented by lines that report edge events (the character
// device with its EDGE flags): In(pull, gpio.BothEdges) requests them, and
// WaitEdge returns the level after the next edge (ok false on a timeout).
// After the line is closed WaitEdge returns errLineClosed.
type edgeWaiter interface {
	WaitEdge(timeout time.Duration) (level gpio.Level, ok bool, err error)
}

// edgeCounter is implemented by lines that know how many edge events were
// lost (the kernel's buffer overflowed); the watcher logs them.
type edgeCounter interface {
	EdgesMissed() int
}

// edgeStamper is implemented by lines whose edge events carry the kernel's
// CLOCK_MONOTONIC timestamp: EdgeTime is that of the edge WaitEdge last
// returned (0 unknown). The watcher dates the edge by it, not by when it got
// round to it: a watcher delayed past the debounce window would otherwise
// take a 1 ms glitch's first edge, handled late, for a level that lasted.
type edgeStamper interface {
	EdgeTime() time.Duration
}

// errLineClosed ends an input's edge watcher.
var errLineClosed = errors.New("line closed")

// input is a debounced input line on a gpio.PinIO.
//
// Where the line reports edges, a watcher feeds every edge to the debouncer
// as it happens, so a level must really last the debounce window: a bounce
// or a burst of pulses between two of the bridge's reads resets the window
// even when every read happens to sample the same level. Where it does not
// (periph test pins, a chip without interrupts), the debouncer sees the
// bridge's reads only, which miss anything shorter than their period.
type input struct {
	pin   gpio.PinIO
	now   func() time.Time
	mono  func() time.Duration // the kernel's CLOCK_MONOTONIC, of edge timestamps; 0 unknown
	edges bool                 // a watcher feeds edge events

	mu     sync.Mutex
	db     debouncer
	events int // edge events seen, for tests and the debug log
}

// newInput configures pin as an input with pull and reads its first level.
// It asks for edge events first and falls back to plain reads (polling)
// when the line cannot give them.
func newInput(pin gpio.PinIO, pull gpio.Pull, debounce time.Duration, now func() time.Time, mono func() time.Duration, log *slog.Logger) (*input, error) {
	in := &input{pin: pin, now: now, mono: mono}
	ew, canEdge := pin.(edgeWaiter)
	if canEdge {
		if err := pin.In(pull, gpio.BothEdges); err == nil {
			in.edges = true
		} else if errors.Is(err, drivers.ErrChannelBusy) {
			closePin(pin)
			return nil, fmt.Errorf("claim as input (pull %s): %w", pull, err)
		} else {
			log.Warn("gpio input: no edge events on this line, polling it instead", "line", pin.String(), "err", err)
		}
	}
	if !in.edges {
		if err := pin.In(pull, gpio.NoEdge); err != nil {
			closePin(pin)
			return nil, fmt.Errorf("claim as input (pull %s): %w", pull, err)
		}
	}
	first, err := in.raw()
	if err != nil {
		closePin(pin)
		return nil, fmt.Errorf("first read: %w", err)
	}
	in.db = debouncer{window: debounce, stable: first, last: first, read: first}
	if in.edges {
		go in.watch(ew, log)
	}
	return in, nil
}

// closePin releases whatever a failed newInput requested (the line request,
// its eventfd): left open, the next attempt would find the line held by
// doorbridge itself and report it "held by another process".
func closePin(pin gpio.PinIO) {
	if c, ok := pin.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// watch feeds edge events to the debouncer until the line is closed. A
// failing wait ends it: reads still sample the line.
func (in *input) watch(ew edgeWaiter, log *slog.Logger) {
	missed := 0
	for {
		lv, ok, err := ew.WaitEdge(time.Second)
		if err != nil {
			if !errors.Is(err, errLineClosed) {
				log.Warn("gpio input: edge events failed, polling the line instead", "line", in.pin.String(), "err", err)
			}
			return
		}
		if !ok {
			continue
		}
		in.mu.Lock()
		in.events++
		stable := in.db.observe(bool(lv), in.edgeAt(ew))
		n := in.events
		in.mu.Unlock()
		log.Debug("gpio input edge", "line", in.pin.String(), "to", lv.String(), "debounced", gpio.Level(stable).String(), "events", n)
		missed = in.logMissed(missed, log)
	}
}

// edgeAt dates the edge WaitEdge just returned on the input's clock: now,
// less the edge's age by the kernel's clock where the line says it.
func (in *input) edgeAt(ew edgeWaiter) time.Time {
	now := in.now()
	es, ok := ew.(edgeStamper)
	if !ok || in.mono == nil {
		return now
	}
	ts, mono := es.EdgeTime(), in.mono()
	if ts <= 0 || mono <= 0 || ts > mono {
		return now
	}
	return now.Add(-(mono - ts))
}

// logMissed warns when the line reports more lost edge events than before
// (reads still sample the level, so the debouncer catches up).
func (in *input) logMissed(before int, log *slog.Logger) int {
	ec, ok := in.pin.(edgeCounter)
	if !ok {
		return before
	}
	if n := ec.EdgesMissed(); n > before {
		log.Warn("gpio input: the kernel dropped edge events", "line", in.pin.String(), "missed", n-before, "total", n)
		return n
	}
	return before
}

// seen returns the number of edge events the watcher has fed to the
// debouncer.
func (in *input) seen() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.events
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
	now := in.now()
	in.db.observe(l, now)
	v := in.db.take()
	if n, t, ok := in.db.chattering(now); ok {
		return v, fmt.Errorf("gpio: line %s: input chattering: %d edges in %s", in.pin, n, t.Round(time.Millisecond))
	}
	return v, nil
}

func (in *input) raw() (bool, error) {
	if r, ok := in.pin.(levelReader); ok {
		l, err := r.ReadLevel()
		return bool(l), err
	}
	return bool(in.pin.Read()), nil
}

// debouncer accepts a new level once it has been seen, on every sample, for
// at least window. Samples are the caller's reads and, where the line has
// them, its edge events: without edges a level that lasts less than the
// caller's read period may be missed.
//
// A line whose level keeps changing faster than window never settles, and
// the debounced level alone would freeze at its old value (a humming door
// contact never seen open, a power-good input never reporting mains loss):
// chattering tells the reader once it has gone on for too long.
type debouncer struct {
	window time.Duration
	stable bool

	pending   bool      // a different level was seen
	candidate bool      // that level
	since     time.Time // when it was first seen

	last      bool      // the last sample
	lastEdge  time.Time // when the samples last changed level
	unsettled time.Time // first change since a level last held for window; zero when settled
	edges     int       // changes since unsettled

	read   bool // the level the last read returned
	unread bool // the debounced level moved away from read since
}

// minChatter is the shortest unsettled time reported as chattering, for
// short debounce windows: a real bounce lasts a few milliseconds.
const minChatter = 500 * time.Millisecond

// chattering reports whether the line has not held any level for window
// since longer than max(10 windows, minChatter), with the changes seen and
// for how long.
func (d *debouncer) chattering(now time.Time) (edges int, since time.Duration, ok bool) {
	if d.window <= 0 || d.unsettled.IsZero() {
		return 0, 0, false
	}
	limit := max(10*d.window, minChatter)
	since = now.Sub(d.unsettled)
	return d.edges, since, since > limit
}

// track follows the raw level's changes for chattering.
func (d *debouncer) track(raw bool, now time.Time) {
	switch {
	case raw != d.last:
		if d.unsettled.IsZero() || now.Sub(d.lastEdge) >= d.window {
			// The level before this change held for window: settled.
			d.unsettled, d.edges = now, 0
		}
		d.edges++
		d.last, d.lastEdge = raw, now
	case !d.unsettled.IsZero() && now.Sub(d.lastEdge) >= d.window:
		d.unsettled = time.Time{}
	}
}

// observe feeds one raw sample taken at now and returns the debounced level.
func (d *debouncer) observe(raw bool, now time.Time) bool {
	d.track(raw, now)
	if d.pending && raw != d.candidate && now.Sub(d.since) >= d.window {
		// The candidate lasted the window and has just ended (an exit
		// button pressed 50 ms between two reads): it was a change.
		d.accept(d.candidate)
	}
	switch {
	case raw == d.stable:
		d.pending = false
	case d.window <= 0:
		d.accept(raw)
	case !d.pending || d.candidate != raw:
		d.pending, d.candidate, d.since = true, raw, now
	case now.Before(d.since):
		d.since = now // an edge dated by the kernel, before a read saw the level
	case now.Sub(d.since) >= d.window:
		d.accept(raw)
	}
	return d.stable
}

// accept makes level the debounced one, remembering that it moved away
// from what the last read returned.
func (d *debouncer) accept(level bool) {
	d.stable, d.pending = level, false
	if level != d.read {
		d.unread = true
	}
}

// take returns the level a read reports: the debounced one, or, where it
// moved away and back since the last read (a press that ended between two
// reads), the level it moved to, once.
func (d *debouncer) take() bool {
	v := d.stable
	if d.unread && v == d.read {
		v = !d.read
	}
	d.read, d.unread = v, false
	return v
}

var (
	_ drivers.Output = (*output)(nil)
	_ drivers.Input  = (*input)(nil)
)
