package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// test-door drives a door's lines the bridge's way (drivers.OpenRelay,
// drivers.RelayLevel, drivers.OpenInput, bridge.SenseOf): the relay opens at
// its off level and is written nothing else until the pulse, which is on
// then off, inverted on an active-low board, and off once more at the end;
// an active-low input reads active at a low level.
func TestTestDoorDrivesLinesAsTheBridge(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		cfg := allInputsConfig(t)
		door := cfg.Door("front")
		door.Relay.ActiveLow = activeLow
		door.Contact.ActiveLow = activeLow
		drv := sim.New(sim.Options{})
		drv.SetInput(config.InputContact, !activeLow) // active: the door is open
		answers := make(chan string, 3)
		answers <- "n" // no listing
		answers <- "y" // the pulse
		close(answers) // no watch
		var out strings.Builder
		td := &testDoor{
			cfg: cfg, in: answers, out: &out, pulse: 10 * time.Millisecond, poll: time.Millisecond,
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			online:  func(context.Context) (bool, error) { return false, nil },
			drivers: map[string]drivers.Driver{"sim": drv},
		}
		if err := td.run(context.Background(), "front"); err != nil {
			t.Fatal(err)
		}
		off := drivers.RelayLevel(door.Relay, false)
		if got, want := drv.History("0"), []bool{off, !off, off, off}; !slices.Equal(got, want) {
			t.Errorf("active_low %v: relay levels %v, want %v (open off, pulse on and off, off at the end)", activeLow, got, want)
		}
		s := out.String()
		for _, want := range []string{"  relay " + door.Relay.Label() + "\n", "  input contact    " + door.Contact.Label() + "\n", "contact    door OPEN"} {
			if !strings.Contains(s, want) {
				t.Errorf("active_low %v: output lacks %q:\n%s", activeLow, want, s)
			}
		}
	}
}
