package bridge

import (
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// A relay forced off (watchdog, panic) refuses "on" however the loop's
// requests interleave with the force, until it is unforced: the loop's
// check of the watchdog and its write are no longer two steps.
func TestRelayRefusesOnWhileForced(t *testing.T) {
	s := sim.New(sim.Options{})
	defer s.Close()
	r := newRelay("d", config.Line{}, func() (drivers.Output, error) { return s.OpenOutput("0", false) }, make(chan struct{}, 1))
	go r.run()
	defer func() { r.stop(); <-r.done }()
	idle := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.wrote == r.seq && r.busy == 0
	}
	for i := range 50 {
		r.request(true)
		if i%2 == 0 {
			testbroker.Eventually(t, wait, func() bool { return s.Levels()["0"] }, "on")
		}
		seq := r.force()
		r.request(false)
		r.request(true) // after the force: refused
		testbroker.Eventually(t, wait, func() bool { done, _ := r.offSince(seq); return done && idle() }, "forced off")
		if s.Levels()["0"] {
			t.Fatalf("round %d: line on while forced off", i)
		}
		r.unforce()
		testbroker.Eventually(t, wait, func() bool { return s.Levels()["0"] && idle() }, "on again once unforced")
		r.request(false)
	}
}
