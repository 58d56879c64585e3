package sim_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/drivers/sim"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// wait is the deadline for an expected outcome: the inputs and faults files
// are polled every 20 ms, but a loaded CI machine (2 cores, -race) can hold
// the poller back far longer; only a failure waits this long.
const wait = 10 * time.Second

func openInput(t *testing.T, d *sim.Driver, ch string) drivers.Input {
	t.Helper()
	in, err := d.OpenInput(ch, drivers.InputOptions{})
	if err != nil {
		t.Fatalf("OpenInput(%q): %v", ch, err)
	}
	return in
}

// waitLevel waits until in reads level without an error.
func waitLevel(t *testing.T, in drivers.Input, level bool, why string) {
	t.Helper()
	testbroker.Eventually(t, wait, func() bool {
		v, err := in.Read()
		return err == nil && v == level
	}, "input: want level %v: %s", level, why)
}

func waitError(t *testing.T, in drivers.Input, substr string) {
	t.Helper()
	testbroker.Eventually(t, wait, func() bool {
		_, err := in.Read()
		return err != nil && strings.Contains(err.Error(), substr)
	}, "input: want an error containing %q", substr)
}

func TestOutputsAndStateFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "relays.json")
	d := sim.New(sim.Options{StateFile: state})
	defer d.Close()
	out, err := d.OpenOutput("0", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenOutput("0", false); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Fatalf("second OpenOutput: %v, want ErrChannelBusy", err)
	}
	if err := out.Set(true); err != nil || !out.Level() {
		t.Fatalf("Set(true): %v, Level %v", err, out.Level())
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(state); string(b) != `{"0":true}` {
		t.Fatalf("state file = %s", b)
	}
	if h := d.History("0"); len(h) != 2 || h[0] || !h[1] {
		t.Fatalf("history = %v, want [false true]", h)
	}
}

// Without an inputs file every input starts low and follows SetInput.
func TestSetInput(t *testing.T) {
	d := sim.New(sim.Options{})
	defer d.Close()
	in := openInput(t, d, "5")
	if v, err := in.Read(); err != nil || v {
		t.Fatalf("fresh input = %v, %v; want low", v, err)
	}
	d.SetInput("5", true)
	if v, err := in.Read(); err != nil || !v {
		t.Fatalf("after SetInput(true) = %v, %v", v, err)
	}
	boom := errors.New("cable cut")
	d.SetInputError("5", boom)
	if _, err := in.Read(); !errors.Is(err, boom) || !strings.Contains(err.Error(), `sim: input "5"`) {
		t.Fatalf("Read with an injected error = %v", err)
	}
	d.SetInputError("5", nil)
	if v, err := in.Read(); err != nil || !v {
		t.Fatalf("after clearing the error = %v, %v", v, err)
	}
}

// A channel is an output or an input, never both, and is opened once.
func TestInputChannelBusy(t *testing.T) {
	d := sim.New(sim.Options{})
	defer d.Close()
	if _, err := d.OpenOutput("0", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenInput("0", drivers.InputOptions{}); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Fatalf("OpenInput on an output: %v", err)
	}
	openInput(t, d, "1")
	if _, err := d.OpenInput("1", drivers.InputOptions{}); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Fatalf("OpenInput twice: %v", err)
	}
	if _, err := d.OpenOutput("1", false); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Fatalf("OpenOutput on an input: %v", err)
	}
}

// The inputs file is read at start and again whenever it changes, written
// atomically or in place.
func TestInputsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inputs.json")
	if err := os.WriteFile(path, []byte(`{"contact": false, "rex": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := sim.New(sim.Options{InputsFile: path})
	defer d.Close()
	contact, rex := openInput(t, d, "contact"), openInput(t, d, "rex")
	if v, err := rex.Read(); err != nil || !v {
		t.Fatalf("rex at start = %v, %v; want high from the file", v, err)
	}
	if v, err := contact.Read(); err != nil || v {
		t.Fatalf("contact at start = %v, %v; want low from the file", v, err)
	}

	if err := sim.WriteFileAtomic(path, []byte(`{"contact": true, "rex": true}`)); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, contact, true, "atomic rewrite of the file")
	// Same size, written in place: still seen.
	if err := os.WriteFile(path, []byte(`{"contact": true, "rex": fals}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitError(t, rex, "inputs file")
	if err := os.WriteFile(path, []byte(`{"contact": true, "rex": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, rex, false, "in-place rewrite after a broken file")

	// SetInput lasts until the file changes again.
	d.SetInput("contact", false)
	waitLevel(t, contact, false, "SetInput with an inputs file")
	if err := sim.WriteFileAtomic(path, []byte(`{"contact": true}`)); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, contact, true, "the file overrides SetInput when it changes")
	// A channel the file no longer lists is unknown, not low.
	waitError(t, rex, "not listed")
}

// A missing inputs file makes every input unknown until it appears.
func TestInputsFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inputs.json")
	d := sim.New(sim.Options{InputsFile: path})
	defer d.Close()
	in := openInput(t, d, "0")
	if _, err := in.Read(); err == nil || !strings.Contains(err.Error(), "inputs file") {
		t.Fatalf("Read without the file: %v, want an inputs-file error", err)
	}
	if err := sim.WriteFileAtomic(path, []byte(`{"0": true}`)); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, in, true, "the file appeared")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitError(t, in, "inputs file")
}

// The driver is built from its config entry with inputs_file, and Close
// stops the poller.
func TestInputsFileFromConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inputs.json")
	os.WriteFile(path, []byte(`{"7": true}`), 0o644)
	spec, err := drivers.Decode("sim", map[string]any{"inputs_file": path})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := spec.Open("sim", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	opener, ok := drv.(drivers.InputOpener)
	if !ok {
		t.Fatalf("%T does not open inputs", drv)
	}
	in, err := opener.OpenInput("7", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitLevel(t, in, true, "level from the configured inputs file")
	done := make(chan error, 1)
	go func() { done <- drv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return: poller not stopped")
	}
	if _, err := drivers.Decode("sim", map[string]any{"inputs_fiel": path}); err == nil {
		t.Fatal("a misspelt inputs_file was accepted")
	}
}

// With create_inputs_file a missing inputs file is created with every
// opened input low, so the demo's first run reads known inputs; an edit of
// the file then takes effect as usual.
func TestMissingInputsFileIsCreatedLow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inputs.json")
	d := sim.New(sim.Options{InputsFile: path, CreateInputsFile: true})
	defer d.Close()
	var ins []drivers.Input
	for _, ch := range []string{"c0", "r0"} {
		in, err := d.OpenInput(ch, drivers.InputOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := in.Read(); err != nil || v {
			t.Fatalf("%s: Read = %v, %v; want low, no error", ch, v, err)
		}
		ins = append(ins, in)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != `{"c0":false,"r0":false}` {
		t.Fatalf("inputs file = %s, %v", b, err)
	}
	if err := sim.WriteFileAtomic(path, []byte(`{"c0": true, "r0": false}`)); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 5*time.Second, func() bool { v, err := ins[0].Read(); return v && err == nil }, "the edited inputs file was not read")
}

// The logger Open gets already names the driver (drivers.Spec): the
// driver's lines carry driver=<id> once, not twice.
func TestOpenLogsDriverOnce(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil)).With("driver", "sim")
	drv, err := sim.Options{}.Open("sim", log)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	line, _, _ := strings.Cut(buf.String(), "\n")
	if !strings.Contains(line, "sim driver ready") || strings.Count(line, " driver=sim") != 1 {
		t.Errorf("want one driver=sim in the ready line: %s", line)
	}
}
