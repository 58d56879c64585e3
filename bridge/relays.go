package bridge

// Relay writers (R22): every door's relay has its own goroutine, the only
// one that writes it. The loop hands it the lock power it wants and never
// waits; the watchdog and the panic paths force it off the same way. A write
// that misses its deadline or fails makes only its own door JAMMED, and is
// retried here, off the loop, until it works.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
)

const (
	// writeDeadline is how long a relay write may take before its door is
	// JAMMED (the release budget is 1 s; the write goes on and, if it
	// completes, the door recovers).
	writeDeadline = 300 * time.Millisecond
	// writeRetry is how soon a failed write is tried again.
	writeRetry = 100 * time.Millisecond
	// openRetry is how soon an output that could not be opened (its board
	// unreachable at start) is tried again.
	openRetry = time.Second
)

// relayStatus is what a relay's writer knows of the line.
type relayStatus struct {
	power   bool  // lock power of the last successful write
	written bool  // a write succeeded at least once
	err     error // non-nil: the last write failed or is overdue, the power is unknown
	// watchdog: the last write was forced off by the watchdog or a panic
	// path, which reported it in the audit itself.
	watchdog bool
}

// relay is one door's relay writer.
type relay struct {
	id       string      // the door
	line     config.Line // its relay line: the level of a lock power
	deadline time.Duration
	// open opens the output at its off level (and the driver first, when
	// it could not be opened yet). Called by the writer only.
	open   func() (drivers.Output, error)
	out    drivers.Output // the writer's alone
	notify chan struct{}  // the loop's: some relay has news (cap 1, shared)
	wake   chan struct{}  // cap 1
	quit   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	want    bool   // lock power the loop asked for
	forced  bool   // the watchdog forces off: an "on" is refused
	seq     uint64 // bumped by every request
	wrote   uint64 // the request last written (or tried)
	busy    uint64 // the request being written; 0: none
	st      relayStatus
	news    bool
	stopped bool
}

func newRelay(id string, line config.Line, open func() (drivers.Output, error), notify chan struct{}) *relay {
	r := &relay{
		id: id, line: line, deadline: writeDeadline, open: open, notify: notify,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		seq: 1, // the first write (open at off) is due
	}
	r.kick()
	return r
}

// request asks for lock power p. It never blocks.
func (r *relay) request(p bool) {
	r.mu.Lock()
	if r.want == p { // written, or being written, or retried after a failure
		r.mu.Unlock()
		return
	}
	r.want = p
	r.seq++
	r.mu.Unlock()
	r.kick()
}

// force turns the relay off and refuses "on" until unforce: the watchdog's
// and the panic paths' emergency off. It never blocks, and returns the
// request to wait for.
func (r *relay) force() uint64 {
	r.mu.Lock()
	r.forced = true
	r.seq++
	seq := r.seq
	r.mu.Unlock()
	r.kick()
	return seq
}

// unforce lets the loop's requests through again.
func (r *relay) unforce() {
	r.mu.Lock()
	r.forced = false
	r.seq++
	r.mu.Unlock()
	r.kick()
}

// isForced reports whether the relay is forced off (watchdog, panic).
func (r *relay) isForced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forced
}

func (r *relay) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take returns the status if it changed since the last take.
func (r *relay) take() (relayStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	news := r.news
	r.news = false
	return r.st, news
}

// offSince reports whether request seq (from force) is written: the line
// is off, or err says why it may not be.
func (r *relay) offSince(seq uint64) (done bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wrote < seq {
		return false, r.st.err
	}
	return r.st.err == nil && !r.st.power, r.st.err
}

// run is the writer goroutine.
func (r *relay) run() {
	defer close(r.done)
	var retry <-chan time.Time
	for {
		select {
		case <-r.quit:
			return
		case <-r.wake:
		case <-retry:
		}
		retry = nil
		if failed, opened := r.writeOnce(); failed {
			d := writeRetry
			if !opened {
				d = openRetry
			}
			retry = time.After(d)
		}
	}
}

// writeOnce writes the power wanted now, if it is not written yet or the
// last write failed. It reports whether it failed, and whether the output
// is open.
func (r *relay) writeOnce() (failed, opened bool) {
	r.mu.Lock()
	if r.wrote == r.seq && r.st.err == nil {
		r.mu.Unlock()
		return false, true
	}
	seq, p, forced := r.seq, r.want && !r.forced, r.forced
	r.busy = seq
	r.mu.Unlock()

	t := time.AfterFunc(r.deadline, func() { r.overdue(seq) })
	err := r.set(p)
	t.Stop()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy, r.wrote = 0, seq
	if err != nil {
		r.st.err = err
	} else {
		r.st = relayStatus{power: p, written: true, watchdog: forced}
	}
	r.signalLocked()
	return err != nil, r.out != nil
}

// set writes lock power p, opening the output first if needed.
func (r *relay) set(p bool) error {
	level := drivers.RelayLevel(r.line, p)
	if r.out == nil {
		out, err := r.open()
		if err != nil {
			return err
		}
		r.out = out // at its off level
		if !p {
			return nil
		}
	}
	if err := r.out.Set(level); err != nil {
		return err
	}
	if f, ok := r.out.(interface{ flush() error }); ok {
		return f.flush()
	}
	return nil
}

// overdue marks write seq late: its door is JAMMED while it hangs.
func (r *relay) overdue(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy != seq {
		return
	}
	r.st.err = fmt.Errorf("relay write: %w within %s", errNoAnswer, r.deadline)
	r.signalLocked()
}

var errNoAnswer = errors.New("no answer")

func (r *relay) signalLocked() {
	r.news = true
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// stop ends the writer; a write in progress is left to finish on its own.
func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.stopped = true
		close(r.quit)
	}
}

// flushedOutput is an output whose driver batches writes (drivers.Flusher):
// the writer flushes after each write, so the write is done when it returns.
type flushedOutput struct {
	drivers.Output
	g *flushGroup
}

func (o flushedOutput) flush() error { return o.g.flush() }

// flushGroup shares one driver's flushes among its relay writers: a writer
// waits for a flush that started after its write, and one flush serves
// every writer waiting then (64 doors released at once: a few flushes,
// not 64).
type flushGroup struct {
	f drivers.Flusher

	mu                sync.Mutex
	cond              *sync.Cond
	started, finished uint64 // flush generations
	running           bool
	err               error // of the last flush
}

func newFlushGroup(f drivers.Flusher) *flushGroup {
	g := &flushGroup{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *flushGroup) flush() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	target := g.started + 1 // the running flush may have missed this write
	for g.finished < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := g.f.Flush()
		g.mu.Lock()
		g.running, g.finished, g.err = false, gen, err
		g.cond.Broadcast()
	}
	return g.err
}
