package bridge

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
)

// asyncInput reads a door input whose Read may wait on its board (an I2C
// expander: drivers.Cached not implemented) off the control loop (R22):
// Read returns the last value read and asks for a new one; a read that
// takes longer than writeDeadline makes the input unknown until it
// returns. A changed value wakes the loop.
type asyncInput struct {
	in     drivers.Input
	notify chan struct{} // the loop's relayNews
	kick   chan struct{} // cap 1
	quit   <-chan struct{}
	first  chan struct{} // closed after the first read

	mu    sync.Mutex
	v     bool
	err   error
	have  bool
	since time.Time // when the read in progress started; zero: none
}

// openDoorInput opens a door input; one that may wait on its board is read
// off the loop.
func (b *Bridge) openDoorInput(l config.Line) (drivers.Input, error) {
	in, err := b.openInput(l)
	if err != nil {
		return nil, err
	}
	if _, ok := in.(drivers.Cached); ok {
		return in, nil
	}
	a := &asyncInput{in: in, notify: b.relayNews, kick: make(chan struct{}, 1), quit: b.closing, first: make(chan struct{})}
	go b.guard("input "+l.Driver+"/"+l.Channel, a.run)
	a.poke()
	select { // the first value, if the board answers in time
	case <-a.first:
	case <-time.After(writeDeadline):
	}
	return a, nil
}

func (a *asyncInput) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Read implements drivers.Input without waiting on the board.
func (a *asyncInput) Read() (bool, error) {
	a.poke()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.since.IsZero() && time.Since(a.since) > writeDeadline:
		return false, fmt.Errorf("input read: %w within %s", errNoAnswer, writeDeadline)
	case !a.have:
		return false, errors.New("input read: no answer yet")
	}
	return a.v, a.err
}

func (a *asyncInput) run() {
	for n := 0; ; n++ {
		select {
		case <-a.quit:
			return
		case <-a.kick:
		}
		a.mu.Lock()
		a.since = time.Now()
		a.mu.Unlock()
		v, err := a.in.Read()
		a.mu.Lock()
		changed := !a.have || v != a.v || (err == nil) != (a.err == nil)
		a.v, a.err, a.have, a.since = v, err, true, time.Time{}
		a.mu.Unlock()
		if n == 0 {
			close(a.first)
		}
		if changed {
			select {
			case a.notify <- struct{}{}:
			default:
			}
		}
	}
}
