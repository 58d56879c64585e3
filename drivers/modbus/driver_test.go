package modbus

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/doorbridge/doorbridge/drivers"
)

func newTestDriver(t *testing.T, url string) *Driver {
	t.Helper()
	d, err := New(Options{URL: url, Timeout: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestCoilsFirstLevelIsInitial(t *testing.T) {
	b := newBoard(1)
	// The board kept every coil on from a previous run.
	for i := range b.coils {
		b.coils[i] = true
	}
	s := startServer(t, freeURL(t), b)
	d := newTestDriver(t, s.url)
	initial := map[uint16]bool{0: false, 1: true, 5: false}
	outs := map[uint16]drivers.Output{}
	for a, lvl := range initial {
		o, err := d.OpenOutput(strconv.Itoa(int(a)), lvl)
		if err != nil {
			t.Fatal(err)
		}
		outs[a] = o
		if o.Level() != lvl {
			t.Errorf("coil %d: Level %v after open, want %v", a, o.Level(), lvl)
		}
	}
	for a, lvl := range initial {
		if h := b.history(a); len(h) != 1 || h[0] != lvl {
			t.Errorf("coil %d: writes %v, want first and only [%v]", a, h, lvl)
		}
	}
	for a := range uint16(16) {
		if _, ours := initial[a]; !ours && len(b.history(a)) != 0 {
			t.Errorf("coil %d written although not opened: %v", a, b.history(a))
		}
	}
	// Set drives only its own coil.
	if err := outs[0].Set(true); err != nil {
		t.Fatal(err)
	}
	if err := outs[5].Set(true); err != nil {
		t.Fatal(err)
	}
	if err := outs[0].Set(false); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.history(0), []bool{false, true, false}) || b.coil(0) || !outs[5].Level() || !b.coil(5) {
		t.Errorf("coil 0 writes %v, coil 5 = %v", b.history(0), b.coil(5))
	}
}

func TestDiscreteInputs(t *testing.T) {
	b := newBoard(1)
	b.inputs[2] = true
	s := startServer(t, freeURL(t), b)
	d := newTestDriver(t, s.url)
	in2, err := d.OpenInput("2", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in9, err := d.OpenInput("9", drivers.InputOptions{Pull: "none"})
	if err != nil {
		t.Fatal(err)
	}
	// Read right after open serves the first read.
	if v, err := in2.Read(); err != nil || !v {
		t.Fatalf("input 2: %v, %v", v, err)
	}
	if v, err := in9.Read(); err != nil || v {
		t.Fatalf("input 9: %v, %v", v, err)
	}
	b.setInput(9, true)
	b.setInput(2, false)
	eventually(t, 2*time.Second, "the poller to see the inputs change", func() bool {
		v2, err2 := in2.Read()
		v9, err9 := in9.Read()
		return err2 == nil && err9 == nil && !v2 && v9
	})

	if _, err := d.OpenInput("3", drivers.InputOptions{Pull: "up"}); err == nil || !strings.Contains(err.Error(), `pull "up"`) {
		t.Errorf("pull up: %v", err)
	}
	if _, err := d.OpenInput("2", drivers.InputOptions{}); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Errorf("second open: %v", err)
	}
	// An input the board does not have fails at open with the board's answer.
	if _, err := d.OpenInput("40", drivers.InputOptions{}); err == nil || !strings.Contains(err.Error(), "discrete input 40: first read: illegal data address") {
		t.Errorf("missing input: %v", err)
	}
}

func TestServerGoneAndBack(t *testing.T) {
	url := freeURL(t)
	b := newBoard(1)
	s := startServer(t, url, b)
	d := newTestDriver(t, url)
	out, err := d.OpenOutput("0", false)
	if err != nil {
		t.Fatal(err)
	}
	in, err := d.OpenInput("1", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}

	s.stop()
	start := time.Now()
	err = out.Set(true)
	if err == nil {
		t.Fatal("Set succeeded with the server gone")
	}
	if took := time.Since(start); took > d.opts.Timeout+200*time.Millisecond {
		t.Errorf("failed Set blocked %s (timeout %s)", took, d.opts.Timeout)
	}
	if !strings.HasPrefix(err.Error(), "modbus: "+url+" unit 1: coil 0: set on: ") {
		t.Errorf("error %q does not name driver and coil", err)
	}
	t.Logf("Set with server gone: %v", err)
	if out.Level() {
		t.Error("Level reports a Set that failed")
	}
	eventually(t, 2*time.Second, "Read to report the failed poll", func() bool {
		_, err := in.Read()
		return err != nil && strings.Contains(err.Error(), "discrete input 1: last poll failed")
	})
	// While down, every Set fails within the timeout.
	for range 5 {
		start := time.Now()
		if err := out.Set(true); err == nil {
			t.Fatal("Set succeeded with the server gone")
		}
		if took := time.Since(start); took > d.opts.Timeout+200*time.Millisecond {
			t.Errorf("failed Set blocked %s", took)
		}
	}

	// The board comes back on the same port (with its coil still on).
	b2 := newBoard(1)
	b2.coils[0] = true
	b2.inputs[1] = true
	startServer(t, url, b2)
	eventually(t, 8*time.Second, "Set to work again after the server restarts", func() bool {
		return out.Set(false) == nil
	})
	if b2.coil(0) || out.Level() {
		t.Error("coil 0 not off after reconnect")
	}
	eventually(t, 2*time.Second, "Read to work again", func() bool {
		v, err := in.Read()
		return err == nil && v
	})
}

func TestSetNeverBlocksLongerThanTimeout(t *testing.T) {
	b := newBoard(1)
	s := startServer(t, freeURL(t), b)
	d := newTestDriver(t, s.url)
	out, err := d.OpenOutput("3", false)
	if err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	b.mu.Lock()
	b.hang = hang
	b.mu.Unlock()
	t.Cleanup(func() { close(hang) })
	for range 3 {
		start := time.Now()
		err := out.Set(true)
		took := time.Since(start)
		if err == nil {
			t.Fatal("Set succeeded on a hung board")
		}
		if took > d.opts.Timeout+200*time.Millisecond {
			t.Fatalf("Set blocked %s on a hung board (timeout %s): %v", took, d.opts.Timeout, err)
		}
		t.Logf("hung board: %v after %s", err, took.Round(time.Millisecond))
	}
}

func TestBoardExceptionKeepsLink(t *testing.T) {
	b := newBoard(1)
	s := startServer(t, freeURL(t), b)
	d := newTestDriver(t, s.url)
	out, err := d.OpenOutput("2", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenOutput("100", false)
	if err == nil || !strings.Contains(err.Error(), "coil 100: write initial off: illegal data address") {
		t.Fatalf("missing coil: %v", err)
	}
	if err := out.Set(true); err != nil || !b.coil(2) {
		t.Fatalf("Set after an exception: %v", err)
	}
}

func TestChannels(t *testing.T) {
	b := newBoard(1)
	s := startServer(t, freeURL(t), b)
	d := newTestDriver(t, s.url)
	if _, err := d.OpenOutput("1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenOutput("1", false); !errors.Is(err, drivers.ErrChannelBusy) {
		t.Errorf("second open: %v", err)
	}
	// Coil 1 and discrete input 1 are different address spaces.
	if _, err := d.OpenInput("1", drivers.InputOptions{}); err != nil {
		t.Errorf("input 1: %v", err)
	}
	for _, ch := range []string{"", "x", "-1", "65536", "A0"} {
		if _, err := d.OpenOutput(ch, false); !errors.Is(err, drivers.ErrUnknownChannel) {
			t.Errorf("channel %q: %v", ch, err)
		}
	}
}

func TestWrongUnit(t *testing.T) {
	b := newBoard(7)
	s := startServer(t, freeURL(t), b)
	d, err := New(Options{URL: s.url, UnitID: 3, Timeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.OpenOutput("0", false); err == nil || !strings.Contains(err.Error(), "unit 3: coil 0") {
		t.Errorf("wrong unit: %v", err)
	}
	d7, err := New(Options{URL: s.url, UnitID: 7, Timeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d7.Close()
	if _, err := d7.OpenOutput("0", true); err != nil || !b.coil(0) {
		t.Errorf("unit 7: %v", err)
	}
}

func TestOpenWithoutServerFails(t *testing.T) {
	url := freeURL(t)
	_, err := New(Options{URL: url, Timeout: 200 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "modbus: "+url+" unit 1: connect: ") {
		t.Fatalf("New without server: %v", err)
	}
	_, err = Options{URL: "rtu:///dev/ttyDoesNotExist", UnitID: 1, Speed: 9600, Timeout: 250 * time.Millisecond, PollInterval: time.Second}.Open("board", nil)
	if err == nil || !strings.Contains(err.Error(), "modbus: rtu:///dev/ttyDoesNotExist unit 1: connect: ") {
		t.Fatalf("Open on a missing serial port: %v", err)
	}
	t.Log(err)
}

func TestCloseStopsPoller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := newBoard(1)
	s := startServer(t, freeURL(t), b)
	d, err := New(Options{URL: s.url, PollInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.OpenOutput("0", true)
	if err != nil {
		t.Fatal(err)
	}
	in, err := d.OpenInput("0", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Set(false); err == nil || !strings.Contains(err.Error(), "driver closed") {
		t.Errorf("Set after Close: %v", err)
	}
	if !b.coil(0) {
		t.Error("Close changed a coil")
	}
	_ = in
	s.stop()
}

func TestFromConfig(t *testing.T) {
	spec, err := drivers.Decode("modbus", map[string]any{"url": "tcp://10.0.0.5:502"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{URL: "tcp://10.0.0.5:502", UnitID: 1, Speed: 9600, Timeout: 250 * time.Millisecond, PollInterval: 100 * time.Millisecond}
	if spec.(Options) != want {
		t.Errorf("defaults: %+v", spec)
	}
	if !spec.(drivers.LevelKeeper).KeepsLevelOnExit() {
		t.Error("a Modbus board keeps its coils on exit")
	}
	spec, err = drivers.Decode("modbus", map[string]any{"url": "rtu:///dev/ttyUSB0", "unit_id": 17, "speed": "19200", "timeout": "250ms", "poll_interval": "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	want = Options{URL: "rtu:///dev/ttyUSB0", UnitID: 17, Speed: 19200, Timeout: 250 * time.Millisecond, PollInterval: 50 * time.Millisecond}
	if spec.(Options) != want {
		t.Errorf("decoded: %+v", spec)
	}
	for _, bad := range []map[string]any{
		{},
		{"url": "10.0.0.5:502"},
		{"url": "udp://10.0.0.5:502"},
		{"url": "tcp://10.0.0.5"},
		{"url": "rtu://ttyUSB0"},
		{"url": "tcp://h:502", "unit_id": 0},
		{"url": "tcp://h:502", "unit_id": 256},
		{"url": "tcp://h:502", "speed": 0},
		{"url": "tcp://h:502", "timeout": "1ms"},
		{"url": "tcp://h:502", "timeout": "1s"}, // over the release budget
		{"url": "tcp://h:502", "poll_interval": "0s"},
		{"url": "tcp://h:502", "baud": 9600},
	} {
		if _, err := drivers.Decode("modbus", bad); err == nil || !strings.HasPrefix(err.Error(), "modbus: ") {
			t.Errorf("%v: err %v", bad, err)
		}
	}
}

func TestSpans(t *testing.T) {
	got := spans([]uint16{0, 1, 5, 30, 31, 2100, 4000, 4010})
	want := []span{{0, 6}, {30, 2}, {2100, 1}, {4000, 11}}
	if !slices.Equal(got, want) {
		t.Errorf("spans %v, want %v", got, want)
	}
}

// TestCheckChannelSuggestsOnlyRealAddresses: a channel with leading zeros
// that is no number of the manual's table gets no made-up address ("coil
// 0, address -1", "discrete input -9995").
func TestCheckChannelSuggestsOnlyRealAddresses(t *testing.T) {
	for _, tc := range []struct {
		channel string
		output  bool
		want    string
	}{
		{"00", true, `modbus: coil "00": leading zeros: want the 0-based coil address as a plain number, e.g. "0" (the board's manual may count from 1: coil 1 is address 0)`},
		{"00005", false, `modbus: discrete input "00005": leading zeros: want the 0-based discrete input address as a plain number, e.g. "5" (the board's manual may count from 1: discrete input 1 is address 0)`},
		{"00003", true, `modbus: coil "00003": looks like the manual's numbering (3 is coil 3, address 2): want the 0-based address, e.g. "2"`},
		{"010002", false, `modbus: discrete input "010002": looks like the manual's numbering (10002 is discrete input 2, address 1): want the 0-based address, e.g. "1"`},
	} {
		err := Options{URL: "tcp://192.0.2.1:502"}.CheckChannel(tc.channel, tc.output)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("CheckChannel(%q, %v) = %v\nwant %s", tc.channel, tc.output, err, tc.want)
		}
	}
}
