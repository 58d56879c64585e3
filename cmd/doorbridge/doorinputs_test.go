package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
)

// allInputsConfig is a door "front" with every input of config.Door.Inputs
// on sim driver "sim", each on the channel named after it.
func allInputsConfig(t *testing.T) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("drivers: [{id: sim, type: sim}]\ndoors:\n  - id: front\n    fail_mode: fail_safe\n    relay: {driver: sim, channel: \"0\"}\n")
	for _, in := range (&config.Door{}).Inputs() {
		fmt.Fprintf(&b, "    %s: {driver: sim, channel: %s}\n", in.Name, in.Name)
	}
	cfg, err := config.Parse("inline.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Every input of config.Door.Inputs reaches check-config's hardware probe
// and test-door, which opens it, lists it and reads it in words of its own.
func TestEveryInputReachesCheckConfigAndTestDoor(t *testing.T) {
	cfg := allInputsConfig(t)
	channels := driverChannels(cfg)["sim"]
	for _, in := range cfg.Door("front").Inputs() {
		if !slices.Contains(channels, in.Name) {
			t.Errorf("input %s: channel not probed (channels %v)", in.Name, channels)
		}
		if _, ok := inputWords[in.Name]; !ok {
			t.Errorf("input %s: test-door has no words for it", in.Name)
		}
	}

	answers := make(chan string, 3)
	answers <- "y" // show the inputs
	close(answers) // no pulse, no watch
	var out strings.Builder
	td := &testDoor{
		cfg: cfg, in: answers, out: &out, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		online:  func(context.Context) (bool, error) { return false, nil },
		drivers: map[string]drivers.Driver{"sim": sim.New(sim.Options{})},
	}
	if err := td.run(context.Background(), "front"); err != nil {
		t.Fatal(err)
	}
	for _, in := range cfg.Door("front").Inputs() {
		listed := fmt.Sprintf("  input %-10s sim/%s\n", in.Name, in.Name)
		read := fmt.Sprintf("  %-10s %s\n", in.Name, inputWords[in.Name][1])
		if !strings.Contains(out.String(), listed) || !strings.Contains(out.String(), read) {
			t.Errorf("input %s: want %q and %q in:\n%s", in.Name, listed, read, out.String())
		}
	}
}
