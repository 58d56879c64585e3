package drivers_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// A relay's very first level is its off level: low, or high on an
// active-low board.
func TestOpenRelayStartsOff(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		d := sim.New(sim.Options{})
		out, err := drivers.OpenRelay(d, config.Line{Driver: "sim", Channel: "r1", ActiveLow: activeLow})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.History("r1"); !slices.Equal(got, []bool{activeLow}) || out.Level() != activeLow {
			t.Errorf("active_low %v: levels %v, Level %v; want only %v", activeLow, got, out.Level(), activeLow)
		}
	}
}

func TestOpenRelayErrorNamesLine(t *testing.T) {
	d := sim.New(sim.Options{})
	r := config.Line{Driver: "sim", Channel: "r1"}
	if _, err := drivers.OpenRelay(d, r); err != nil {
		t.Fatal(err)
	}
	_, err := drivers.OpenRelay(d, r)
	if !errors.Is(err, drivers.ErrChannelBusy) || err.Error() != `relay sim/r1: sim: channel "r1": channel already in use` {
		t.Errorf("second open: %v", err)
	}
}

func TestOpenInput(t *testing.T) {
	d := sim.New(sim.Options{})
	d.SetInput("c1", true)
	in, err := drivers.OpenInput(d, config.Line{Driver: "sim", Channel: "c1", Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := in.Read(); err != nil || !v {
		t.Errorf("Read = %v, %v; want true", v, err)
	}
	_, err = drivers.OpenInput(outputsOnly{}, config.Line{Driver: "relays", Channel: "c1"})
	if err == nil || err.Error() != `driver "relays" has no input lines` {
		t.Errorf("driver without inputs: %v", err)
	}
}

// outputsOnly is a driver without input lines.
type outputsOnly struct{}

func (outputsOnly) OpenOutput(string, bool) (drivers.Output, error) { return nil, errors.New("none") }
func (outputsOnly) Close() error                                    { return nil }
