package gpio

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/doorbridge/doorbridge/drivers"
)

func TestOutputFirstLevelIsInitial(t *testing.T) {
	for _, initial := range []bool{false, true} {
		d, tl, _ := newTestDriver(t, Options{})
		// Pins start high (see newTestLines), and a low one shows the other
		// direction.
		tl.pins[3].drive(gpio.Low)
		for _, n := range []int{2, 3} {
			out, err := d.OpenOutput(tl.pins[n].Name(), initial)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"Out(" + gpio.Level(initial).String() + ")"}
			if got := tl.pins[n].Ops(); !slices.Equal(got, want) {
				t.Errorf("initial %v: pin %d ops %v, want exactly %v", initial, n, got, want)
			}
			if got := tl.pins[n].Read(); got != gpio.Level(initial) {
				t.Errorf("initial %v: pin %d shows %v", initial, n, got)
			}
			if out.Level() != initial {
				t.Errorf("initial %v: Level() = %v", initial, out.Level())
			}
		}
	}
}

func TestOutputSetAndLevel(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{})
	out, err := d.OpenOutput("GPIO5", false)
	if err != nil {
		t.Fatal(err)
	}
	p := tl.pins[5]
	for _, l := range []bool{true, true, false, true} {
		if err := out.Set(l); err != nil {
			t.Fatal(err)
		}
		if out.Level() != l || p.Read() != gpio.Level(l) {
			t.Fatalf("after Set(%v): Level %v, pin %v", l, out.Level(), p.Read())
		}
	}
	want := []string{"Out(Low)", "Out(High)", "Out(High)", "Out(Low)", "Out(High)"}
	if got := p.Ops(); !slices.Equal(got, want) {
		t.Errorf("ops %v, want %v", got, want)
	}
	// A failed write leaves Level at the last level set successfully.
	p.fail(errors.New("EIO"), nil)
	err = out.Set(false)
	if err == nil || !strings.Contains(err.Error(), "gpio: line GPIO5(5): set Low: EIO") {
		t.Fatalf("failed Set: %v", err)
	}
	if !out.Level() {
		t.Error("Level changed by a failed Set")
	}
}

func TestOutputOpenFailureReleasesChannel(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{})
	tl.pins[1].fail(errors.New("busy"), nil)
	if _, err := d.OpenOutput("1", false); err == nil || !strings.Contains(err.Error(), `gpio: channel "1": line GPIO1(1): claim as output at Low: busy`) {
		t.Fatalf("OpenOutput: %v", err)
	}
	tl.pins[1].fail(nil, nil)
	if _, err := d.OpenOutput("1", false); err != nil {
		t.Fatalf("reopen after failure: %v", err)
	}
}

func TestOutputConcurrentSet(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{})
	out, err := d.OpenOutput("GPIO0", false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				_ = out.Set((i+j)%2 == 0)
				_ = out.Level()
			}
		})
	}
	wg.Wait()
	if err := out.Set(false); err != nil || out.Level() || tl.pins[0].Read() != gpio.Low {
		t.Fatal("final Set(false) not applied")
	}
}

func TestChannelBusy(t *testing.T) {
	d, _, _ := newTestDriver(t, Options{})
	if _, err := d.OpenOutput("GPIO4", false); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"GPIO4", "4"} {
		_, err := d.OpenOutput(ch, false)
		if !errors.Is(err, drivers.ErrChannelBusy) || !strings.Contains(err.Error(), `already opened as channel "GPIO4"`) {
			t.Errorf("second open of %q: %v", ch, err)
		}
		_, err = d.OpenInput(ch, drivers.InputOptions{})
		if !errors.Is(err, drivers.ErrChannelBusy) {
			t.Errorf("input open of busy %q: %v", ch, err)
		}
	}
	if _, err := d.OpenOutput("GPIO99", false); !errors.Is(err, drivers.ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestInputPull(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{Debounce: DefaultDebounce})
	cases := []struct {
		ch, pull string
		want     gpio.Pull
		level    bool
	}{
		{"0", "up", gpio.PullUp, true},
		{"1", "down", gpio.PullDown, false},
		{"2", "none", gpio.Float, true}, // floats at what the pin showed (high)
		{"3", "", gpio.PullNoChange, true},
	}
	for _, c := range cases {
		in, err := d.OpenInput(c.ch, drivers.InputOptions{Pull: c.pull})
		if err != nil {
			t.Fatal(err)
		}
		p := tl.pins[int(c.ch[0]-'0')]
		if p.Pull() != c.want {
			t.Errorf("pull %q: pin pull %v, want %v", c.pull, p.Pull(), c.want)
		}
		if ops := p.Ops(); !slices.Equal(ops, []string{"In(" + c.want.String() + ")"}) {
			t.Errorf("pull %q: ops %v: an input must never be driven", c.pull, ops)
		}
		got, err := in.Read()
		if err != nil || got != c.level {
			t.Errorf("pull %q: Read = %v, %v; want %v", c.pull, got, err, c.level)
		}
	}
	if _, err := d.OpenInput("5", drivers.InputOptions{Pull: "sideways"}); err == nil || !strings.Contains(err.Error(), `gpio: channel "5": pull "sideways"`) {
		t.Errorf("bad pull: %v", err)
	}
}

func TestInputDebounce(t *testing.T) {
	d, tl, clk := newTestDriver(t, Options{Debounce: 20 * time.Millisecond})
	in, err := d.OpenInput("GPIO6", drivers.InputOptions{Pull: "down"})
	if err != nil {
		t.Fatal(err)
	}
	p := tl.pins[6]
	step := func(drive gpio.Level, after time.Duration, want bool) {
		t.Helper()
		p.drive(drive)
		clk.advance(after)
		got, err := in.Read()
		if err != nil || got != want {
			t.Fatalf("drive %v, +%v: Read = %v, %v; want %v", drive, after, got, err, want)
		}
	}
	step(gpio.Low, 0, false)
	step(gpio.High, time.Millisecond, false)    // bounce starts: t=0 of high
	step(gpio.High, 10*time.Millisecond, false) // 10ms high
	step(gpio.Low, 5*time.Millisecond, false)   // back low: restart
	step(gpio.High, time.Millisecond, false)    // high again: t=0
	step(gpio.High, 19*time.Millisecond, false) // 19ms: not yet
	step(gpio.High, time.Millisecond, true)     // 20ms stable: accepted
	step(gpio.Low, time.Millisecond, true)      // release starts
	step(gpio.Low, 25*time.Millisecond, false)  // accepted after 25ms
	step(gpio.Low, time.Hour, false)            // stays

	// Debounce 0 passes every sample through.
	d0, tl0, _ := newTestDriver(t, Options{Debounce: 0})
	in0, err := d0.OpenInput("1", drivers.InputOptions{Pull: "down"})
	if err != nil {
		t.Fatal(err)
	}
	tl0.pins[1].drive(gpio.High)
	if got, _ := in0.Read(); !got {
		t.Error("debounce 0: change not seen at once")
	}
}

// TestInputEdgesDebounce: on a line with edge events a burst of pulses
// shorter than the debounce window is never accepted, even when every read
// of the bridge happens to fall inside a pulse (reads alone would accept it:
// two reads 100 ms apart both saw high).
func TestInputEdgesDebounce(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	d := New(Options{Debounce: 20 * time.Millisecond}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clk.now
	t.Cleanup(func() { close(ep.closed); _ = d.Close() })
	ep.drive(gpio.Low)
	in, err := d.OpenInput("GPIO3", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep.edge != gpio.BothEdges {
		t.Fatalf("input requested with edge %v, want both edges", ep.edge)
	}
	sent := 0
	edge := func(lv gpio.Level) {
		t.Helper()
		ep.drive(lv)
		ep.edges <- lv
		sent++
		waitFor(t, func() bool { return in.(*input).seen() == sent }, "edge %d processed", sent)
	}
	read := func(want bool) {
		t.Helper()
		if got, err := in.Read(); err != nil || got != want {
			t.Fatalf("Read = %v, %v; want %v", got, err, want)
		}
	}
	for range 3 {
		edge(gpio.High) // a 5 ms pulse, read 1 ms into it
		clk.advance(time.Millisecond)
		read(false)
		clk.advance(4 * time.Millisecond)
		edge(gpio.Low)
		clk.advance(95 * time.Millisecond)
	}
	edge(gpio.High) // a real change: high for the window
	clk.advance(20 * time.Millisecond)
	read(true)
}

// TestInputEdgesRefused: a line that cannot give edge events is polled.
func TestInputEdgesRefused(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	ep.refuse = errors.New("no interrupt")
	d := New(Options{Debounce: 0}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	t.Cleanup(func() { _ = d.Close() })
	ep.drive(gpio.Low)
	in, err := d.OpenInput("GPIO3", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.(*input).edges || ep.edge != gpio.NoEdge {
		t.Fatalf("edges %v, requested edge %v; want a polled line", in.(*input).edges, ep.edge)
	}
	ep.drive(gpio.High)
	if got, _ := in.Read(); !got {
		t.Error("polled line: change not read")
	}
}

func TestInputFirstReadIsNotDelayed(t *testing.T) {
	// A contact already closed at start reads closed on the first Read.
	d, _, _ := newTestDriver(t, Options{Debounce: time.Second})
	in, err := d.OpenInput("0", drivers.InputOptions{Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := in.Read(); err != nil || !got {
		t.Fatalf("Read = %v, %v", got, err)
	}
}

func TestInputReadError(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{})
	in, err := d.OpenInput("GPIO7", drivers.InputOptions{Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	tl.pins[7].fail(nil, errors.New("EIO"))
	if _, err := in.Read(); err == nil || !strings.Contains(err.Error(), "gpio: line GPIO7(7): read: EIO") {
		t.Fatalf("Read: %v", err)
	}
	// A failing first read fails OpenInput.
	tl.pins[2].fail(nil, errors.New("EIO"))
	if _, err := d.OpenInput("2", drivers.InputOptions{}); err == nil || !strings.Contains(err.Error(), "first read: EIO") {
		t.Fatalf("OpenInput: %v", err)
	}
}

func TestCloseReleasesLines(t *testing.T) {
	d, tl, _ := newTestDriver(t, Options{})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !tl.closed {
		t.Error("lines not released")
	}
	if _, err := d.OpenOutput("0", false); err == nil {
		t.Error("OpenOutput after Close succeeded")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFromConfig(t *testing.T) {
	spec, err := drivers.Decode("gpio", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.(Options); o.Debounce != DefaultDebounce || o.Chip != "" {
		t.Errorf("defaults: %+v", o)
	}
	if spec.(drivers.LevelKeeper).KeepsLevelOnExit() {
		t.Error("gpio lines do not keep their level on exit")
	}
	spec, err = drivers.Decode("gpio", map[string]any{"chip": "gpiochip1", "debounce": "5ms"})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.(Options); o.Debounce != 5*time.Millisecond || o.Chip != "gpiochip1" {
		t.Errorf("decoded: %+v", o)
	}
	if spec, err = drivers.Decode("gpio", map[string]any{"debounce": "0s"}); err != nil || spec.(Options).Debounce != 0 {
		t.Errorf("debounce 0: %v %v", spec, err)
	}
	for _, bad := range []map[string]any{
		{"chips": "gpiochip0"},
		{"debounce": "-1ms"},
		{"debounce": "1m"},
		{"debounce": "soon"},
	} {
		if _, err := drivers.Decode("gpio", bad); err == nil || !strings.HasPrefix(err.Error(), "gpio: ") {
			t.Errorf("%v: err %v", bad, err)
		}
	}
}

func TestOpenWithoutChipFails(t *testing.T) {
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		t.Skip("this machine has GPIO chips")
	}
	_, err := Options{Chip: "gpiochip0"}.Open("relays", nil)
	if err == nil || !strings.Contains(err.Error(), `gpio: chip "gpiochip0": not found`) || !strings.Contains(err.Error(), "/dev/gpiochip") {
		t.Fatalf("Open: %v", err)
	}
	t.Log(err)
	_, err = Options{}.Open("relays", nil)
	if err == nil || !strings.Contains(err.Error(), "gpio: no GPIO chip found") {
		t.Fatalf("Open without chip option: %v", err)
	}
}

// TestInputChatteringIsAnError: a line whose level keeps changing faster
// than the debounce window never settles; past max(10 windows, 500 ms) Read
// says so with an error instead of returning the old level as if it were
// known (a humming door contact never seen open, a power-good input never
// reporting mains loss). Once a level holds for the window, it is read again.
func TestInputChatteringIsAnError(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	d := New(Options{Debounce: 20 * time.Millisecond}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clk.now
	t.Cleanup(func() { close(ep.closed); _ = d.Close() })
	ep.drive(gpio.Low)
	in, err := d.OpenInput("GPIO3", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	edge := func(lv gpio.Level) {
		t.Helper()
		ep.drive(lv)
		ep.edges <- lv
		sent++
		waitFor(t, func() bool { return in.(*input).seen() == sent }, "edge %d processed", sent)
	}
	// 5 ms per level: 100 changes is 500 ms, not yet chattering.
	for i := range 100 {
		edge(gpio.Level(i%2 == 0))
		clk.advance(5 * time.Millisecond)
	}
	if got, err := in.Read(); err != nil || got {
		t.Fatalf("after 500 ms of chatter: Read = %v, %v; want the old level, no error yet (500 ms is the limit)", got, err)
	}
	for i := range 4 {
		edge(gpio.Level(i%2 == 0))
		clk.advance(5 * time.Millisecond)
	}
	_, err = in.Read()
	if err == nil || !strings.Contains(err.Error(), "gpio: line GPIO3(3): input chattering: 104 edges in 520ms") {
		t.Fatalf("after 520 ms of chatter: Read error = %v; want input chattering: 104 edges in 520ms", err)
	}
	// The line settles high: the new level, no error.
	edge(gpio.High)
	clk.advance(20 * time.Millisecond)
	if got, err := in.Read(); err != nil || !got {
		t.Fatalf("after the line settled high: Read = %v, %v; want true, nil", got, err)
	}
}

// TestInputReleasedWhenOpenFails: an input whose first read fails is
// released (its line request and eventfd closed): left requested, the
// bridge's next attempt would find the line held by doorbridge itself and
// report it "held by another process".
func TestInputReleasedWhenOpenFails(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	d := New(Options{Debounce: 20 * time.Millisecond}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	t.Cleanup(func() { close(ep.closed); _ = d.Close() })
	ep.fail(nil, errors.New("get value: EIO"))
	if _, err := d.OpenInput("GPIO3", drivers.InputOptions{}); err == nil || !strings.Contains(err.Error(), "first read: get value: EIO") {
		t.Fatalf("OpenInput error = %v, want the first read's", err)
	}
	ep.mu.Lock()
	closes := ep.closes
	ep.mu.Unlock()
	if closes != 1 {
		t.Fatalf("line closed %d times after the failed open, want 1", closes)
	}
	ep.fail(nil, nil)
	if _, err := d.OpenInput("GPIO3", drivers.InputOptions{}); err != nil {
		t.Fatalf("reopen: %v", err)
	}
}

// TestInputEdgesDatedByTheKernel: a 1 ms glitch whose edges the watcher
// handles 25 ms late (a busy machine) must not become a change: the edges
// are dated by the kernel's timestamps, not by when they were handled. A
// read during the glitch saw it high; the late rising edge, dated by its
// handling, would have made it look high for 24.5 ms, past the 20 ms window
// (an exit button's glitch unlocking a strike).
func TestInputEdgesDatedByTheKernel(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	d := New(Options{Debounce: 20 * time.Millisecond}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	boot := clk.now().Add(-time.Hour)
	d.now = clk.now
	d.mono = func() time.Duration { return clk.now().Sub(boot) }
	t.Cleanup(func() { close(ep.closed); _ = d.Close() })
	ep.drive(gpio.Low)
	in, err := d.OpenInput("GPIO3", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := d.mono()
	ep.drive(gpio.High) // the glitch
	clk.advance(500 * time.Microsecond)
	if got, err := in.Read(); err != nil || got {
		t.Fatalf("Read during the glitch = %v, %v; want false", got, err)
	}
	clk.advance(500 * time.Microsecond)
	ep.drive(gpio.Low) // over after 1 ms
	clk.advance(24 * time.Millisecond)
	sent := 0
	for _, e := range []struct {
		lv gpio.Level
		ts time.Duration
	}{{gpio.High, t0}, {gpio.Low, t0 + time.Millisecond}} {
		ep.stampNext(e.ts)
		ep.edges <- e.lv
		sent++
		waitFor(t, func() bool { return in.(*input).seen() == sent }, "edge %d processed", sent)
	}
	if got, err := in.Read(); err != nil || got {
		t.Fatalf("after a 1 ms glitch handled 25 ms late: Read = %v, %v; want false", got, err)
	}
}

// TestInputPressBetweenReadsIsSeen: an exit button pressed for 50 ms, longer
// than the debounce window, between two of the bridge's reads 100 ms apart:
// the next read returns the press once, then the released level.
func TestInputPressBetweenReadsIsSeen(t *testing.T) {
	tl := newTestLines(8)
	ep := newEdgePin(tl.pins[3])
	d := New(Options{Debounce: 20 * time.Millisecond}, lineMap{tl, map[string]gpio.PinIO{"GPIO3": ep}})
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clk.now
	t.Cleanup(func() { close(ep.closed); _ = d.Close() })
	ep.drive(gpio.Low)
	in, err := d.OpenInput("GPIO3", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	edge := func(lv gpio.Level) {
		t.Helper()
		ep.drive(lv)
		ep.edges <- lv
		sent++
		waitFor(t, func() bool { return in.(*input).seen() == sent }, "edge %d processed", sent)
	}
	read := func(want bool, why string) {
		t.Helper()
		if got, err := in.Read(); err != nil || got != want {
			t.Fatalf("%s: Read = %v, %v; want %v", why, got, err, want)
		}
	}
	read(false, "before the press")
	clk.advance(25 * time.Millisecond)
	edge(gpio.High)
	clk.advance(50 * time.Millisecond)
	edge(gpio.Low)
	clk.advance(25 * time.Millisecond)
	read(true, "the read after a 50 ms press")
	read(false, "the next read")
	// A 5 ms pulse between reads stays a glitch.
	edge(gpio.High)
	clk.advance(5 * time.Millisecond)
	edge(gpio.Low)
	clk.advance(95 * time.Millisecond)
	read(false, "after a 5 ms glitch")
}
