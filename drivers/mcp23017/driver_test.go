package mcp23017

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/doorbridge/doorbridge/drivers"
)

func newTestDriver(t *testing.T, c *chipModel, o Options) *Driver {
	t.Helper()
	if o.Bus == "" {
		o.Bus = "/dev/i2c-1"
	}
	d, err := New(c, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var high, low = true, false

func TestOutputsFirstLevelIsInitial(t *testing.T) {
	c := newChipModel(0x20)
	// The latches hold ones (a previous run, or noise): a pin made an output
	// before its latch is written would drive high first.
	c.preload(regOLAT, 0xFF)
	c.preload(regOLAT+1, 0xFF)
	d := newTestDriver(t, c, Options{})
	initial := map[pin]bool{0: false, 1: true, 6: false, 8: true, 14: false, 15: false}
	for p, lvl := range initial {
		out, err := d.OpenOutput(p.String(), lvl)
		if err != nil {
			t.Fatal(err)
		}
		if out.Level() != lvl {
			t.Errorf("%s: Level %v", p, out.Level())
		}
	}
	for p, lvl := range initial {
		if h := c.history(p); !slices.Equal(h, []bool{lvl}) {
			t.Errorf("%s: presented %v, want only [%v]", p, h, lvl)
		}
	}
	// Pins not opened stay inputs.
	if got := c.reg(regIODIR); got != 0xFF&^0x43 {
		t.Errorf("IODIRA %#02x", got)
	}
	if got := c.reg(regIODIR + 1); got != 0xFF&^0xC1 {
		t.Errorf("IODIRB %#02x", got)
	}
}

func TestOutputWritesLatchBeforeDirection(t *testing.T) {
	c := newChipModel(0x21)
	rec := &i2ctest.Record{Bus: c}
	d, err := New(rec, Options{Address: 0x21, Bus: "1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.Ops = nil
	if _, err := d.OpenOutput("B2", true); err != nil {
		t.Fatal(err)
	}
	want := []i2ctest.IO{
		{Addr: 0x21, W: []byte{regOLAT + 1, 0x04}},
		{Addr: 0x21, W: []byte{regIODIR + 1, 0xFB}},
	}
	if len(rec.Ops) != len(want) {
		t.Fatalf("ops %v, want %v", rec.Ops, want)
	}
	for i := range want {
		if rec.Ops[i].Addr != want[i].Addr || !slices.Equal(rec.Ops[i].W, want[i].W) || len(rec.Ops[i].R) != 0 {
			t.Errorf("op %d: %v, want %v", i, rec.Ops[i], want[i])
		}
	}
}

func TestOutputAlreadyOutputFromPreviousRun(t *testing.T) {
	c := newChipModel(0x20)
	// A previous run left port A all outputs, all on.
	c.preload(regIODIR, 0x00)
	c.preload(regOLAT, 0xFF)
	d := newTestDriver(t, c, Options{})
	if _, err := d.OpenOutput("2", false); err != nil {
		t.Fatal(err)
	}
	if h := c.history(2); !slices.Equal(h, []bool{true, false}) {
		t.Errorf("GPA2 presented %v, want [on (before us), off]", h)
	}
	// Pins no channel opened are left alone.
	if got := c.reg(regOLAT); got != 0xFB {
		t.Errorf("OLATA %#02x, want 0xfb", got)
	}
	if got := c.reg(regIODIR); got != 0x00 {
		t.Errorf("IODIRA %#02x", got)
	}
}

func TestSetChangesOnlyItsBit(t *testing.T) {
	c := newChipModel(0x20)
	d := newTestDriver(t, c, Options{})
	outs := map[pin]drivers.Output{}
	for _, p := range []pin{0, 3, 7, 8, 12} {
		o, err := d.OpenOutput(p.String(), false)
		if err != nil {
			t.Fatal(err)
		}
		outs[p] = o
	}
	want := [2]byte{}
	for i, step := range []struct {
		p   pin
		lvl bool
	}{{3, true}, {8, true}, {7, true}, {3, false}, {12, true}, {0, true}, {8, false}, {8, false}} {
		if err := outs[step.p].Set(step.lvl); err != nil {
			t.Fatal(err)
		}
		want[step.p.port()] &^= step.p.mask()
		if step.lvl {
			want[step.p.port()] |= step.p.mask()
		}
		if got := [2]byte{c.reg(regOLAT), c.reg(regOLAT + 1)}; got != want {
			t.Fatalf("step %d (%s=%v): OLAT %#02x, want %#02x", i, step.p, step.lvl, got, want)
		}
		for p, o := range outs {
			if o.Level() != (want[p.port()]&p.mask() != 0) {
				t.Errorf("step %d: %s Level %v", i, p, o.Level())
			}
		}
	}
	if got := [2]byte{c.reg(regIODIR), c.reg(regIODIR + 1)}; got != [2]byte{0x76, 0xEE} {
		t.Errorf("IODIR %#02x", got)
	}
}

func TestConcurrentSet(t *testing.T) {
	c := newChipModel(0x20)
	d := newTestDriver(t, c, Options{})
	var outs []drivers.Output
	for p := range pin(16) {
		o, err := d.OpenOutput(p.String(), false)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	var wg sync.WaitGroup
	for i, o := range outs {
		wg.Go(func() {
			for j := range 20 {
				_ = o.Set((i+j)%2 == 1)
			}
			_ = o.Set(i%2 == 1)
		})
	}
	wg.Wait()
	if a, b := c.reg(regOLAT), c.reg(regOLAT+1); a != 0xAA || b != 0xAA {
		t.Errorf("OLAT %#02x %#02x, want 0xaa 0xaa", a, b)
	}
}

func TestInputs(t *testing.T) {
	c := newChipModel(0x20)
	c.preload(regIPOL, 0xFF) // someone inverted port A's polarity
	d := newTestDriver(t, c, Options{PullUp: true})

	// pull "" takes the driver's pull_up: a floating contact reads high.
	in1, err := d.OpenInput("1", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := in1.Read(); err != nil || !v {
		t.Fatalf("floating with pull-up: %v, %v", v, err)
	}
	c.drive(1, &low)
	if v, err := in1.Read(); err != nil || v {
		t.Fatalf("pulled low: %v, %v", v, err)
	}
	if c.reg(regGPPU)&0x02 == 0 || c.reg(regIPOL)&0x02 != 0 {
		t.Errorf("GPPUA %#02x IPOLA %#02x", c.reg(regGPPU), c.reg(regIPOL))
	}
	if c.reg(regIPOL) != 0xFD {
		t.Error("IPOL bits of other pins changed")
	}

	// pull "none": no pull-up, a floating pin reads low in the model.
	in9, err := d.OpenInput("B1", drivers.InputOptions{Pull: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if c.reg(regGPPU+1) != 0 {
		t.Errorf("GPPUB %#02x", c.reg(regGPPU+1))
	}
	c.drive(9, &high)
	if v, err := in9.Read(); err != nil || !v {
		t.Fatalf("B1 driven high: %v, %v", v, err)
	}

	// pull "up" on a driver without pull_up.
	d2 := newTestDriver(t, newChipModel(0x20), Options{})
	in, err := d2.OpenInput("GPA4", drivers.InputOptions{Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := in.Read(); !v {
		t.Error("pull up not applied")
	}

	// An input pin never drives.
	for _, p := range []pin{1, 9} {
		if h := c.history(p); len(h) != 0 {
			t.Errorf("input %s drove %v", p, h)
		}
	}

	if _, err := d.OpenInput("2", drivers.InputOptions{Pull: "down"}); err == nil || !strings.Contains(err.Error(), "no pull-down") {
		t.Errorf("pull down: %v", err)
	}
	for _, ch := range []string{"7", "B7", "15"} {
		if _, err := d.OpenInput(ch, drivers.InputOptions{}); err == nil || !strings.Contains(err.Error(), "output only") {
			t.Errorf("input on %s: %v", ch, err)
		}
	}
	// GPA7 stays usable as an output.
	if _, err := d.OpenOutput("7", false); err != nil {
		t.Errorf("output on GPA7: %v", err)
	}
}

func TestBusErrorNamesAddressAndChannel(t *testing.T) {
	c := newChipModel(0x23)
	d := newTestDriver(t, c, Options{Address: 0x23})
	out, err := d.OpenOutput("A5", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Set(true); err != nil {
		t.Fatal(err)
	}
	in, err := d.OpenInput("B0", drivers.InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.setFail(errors.New("remote I/O error"))
	err = out.Set(false)
	const wantSet = "mcp23017: 0x23 on /dev/i2c-1: channel 5 (GPA5): set low: write OLATA=0x00: remote I/O error"
	if err == nil || err.Error() != wantSet {
		t.Errorf("Set error\n got %v\nwant %s", err, wantSet)
	}
	if !out.Level() {
		t.Error("Level changed by a failed Set")
	}
	_, err = in.Read()
	const wantRead = "mcp23017: 0x23 on /dev/i2c-1: channel 8 (GPB0): read GPIOB: remote I/O error"
	if err == nil || err.Error() != wantRead {
		t.Errorf("Read error\n got %v\nwant %s", err, wantRead)
	}
	if _, err := d.OpenOutput("3", false); err == nil || !strings.Contains(err.Error(), "channel 3 (GPA3): open at low: write OLATA") {
		t.Errorf("OpenOutput: %v", err)
	}
	// The failed open released the channel.
	c.setFail(nil)
	if _, err := d.OpenOutput("3", false); err != nil {
		t.Errorf("reopen: %v", err)
	}
	// After the bus recovers, the next Set writes the whole latch again.
	if err := out.Set(false); err != nil || c.reg(regOLAT)&0x20 != 0 {
		t.Errorf("Set after recovery: %v", err)
	}
}

func TestNewChecksChip(t *testing.T) {
	c := newChipModel(0x20)
	if _, err := New(c, Options{Bus: "1", Address: 0x24}, nil); err == nil || !strings.Contains(err.Error(), "mcp23017: 0x24 on 1: no answer") {
		t.Errorf("wrong address: %v", err)
	}
	c.setReg(regIOCON, ioconBank)
	if _, err := New(c, Options{Bus: "1"}, nil); err == nil || !strings.Contains(err.Error(), "IOCON.BANK=1") {
		t.Errorf("BANK=1: %v", err)
	}
	// New reads, never writes.
	c2 := newChipModel(0x20)
	rec := &i2ctest.Record{Bus: c2}
	if _, err := New(rec, Options{Bus: "1"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, op := range rec.Ops {
		if len(op.W) != 1 {
			t.Errorf("New wrote %v", op)
		}
	}
}

func TestChannels(t *testing.T) {
	for ch, want := range map[string]pin{"0": 0, "15": 15, "A0": 0, "a7": 7, "B0": 8, "b7": 15, "GPB3": 11, "gpa2": 2} {
		if p, err := parsePin(ch); err != nil || p != want {
			t.Errorf("%q: %v, %v", ch, p, err)
		}
	}
	for _, ch := range []string{"", "16", "-1", "C0", "A8", "GPA", "GPIO1"} {
		if _, err := parsePin(ch); !errors.Is(err, drivers.ErrUnknownChannel) {
			t.Errorf("%q: %v", ch, err)
		}
	}
	d := newTestDriver(t, newChipModel(0x20), Options{})
	if _, err := d.OpenOutput("A1", false); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"1", "GPA1"} {
		if _, err := d.OpenOutput(ch, false); !errors.Is(err, drivers.ErrChannelBusy) {
			t.Errorf("%s: %v", ch, err)
		}
		if _, err := d.OpenInput(ch, drivers.InputOptions{}); !errors.Is(err, drivers.ErrChannelBusy) {
			t.Errorf("input %s: %v", ch, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenOutput("2", false); err == nil {
		t.Error("open after Close")
	}
}

func TestFromConfig(t *testing.T) {
	spec, err := drivers.Decode("mcp23017", map[string]any{"bus": "/dev/i2c-1"})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.(Options); o != (Options{Bus: "/dev/i2c-1", Address: 0x20}) {
		t.Errorf("defaults: %+v", o)
	}
	if !spec.(drivers.LevelKeeper).KeepsLevelOnExit() {
		t.Error("the MCP23017 keeps its outputs on exit")
	}
	spec, err = drivers.Decode("mcp23017", map[string]any{"bus": "1", "address": "0x27", "pull_up": true})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.(Options); o != (Options{Bus: "1", Address: 0x27, PullUp: true}) {
		t.Errorf("decoded: %+v", o)
	}
	if spec, err = drivers.Decode("mcp23017", map[string]any{"bus": "1", "address": 33}); err != nil || spec.(Options).Address != 0x21 {
		t.Errorf("integer address: %v %v", spec, err)
	}
	for _, bad := range []map[string]any{
		{},
		{"bus": "1", "address": 0x28},
		{"bus": "1", "address": "0x1f"},
		{"bus": "1", "address": "twenty"},
		{"bus": "1", "pullup": true},
	} {
		if _, err := drivers.Decode("mcp23017", bad); err == nil || !strings.HasPrefix(err.Error(), "mcp23017: ") {
			t.Errorf("%v: err %v", bad, err)
		}
	}
}

func TestOpenWithoutBusFails(t *testing.T) {
	if m, _ := filepath.Glob("/dev/i2c-*"); len(m) > 0 {
		t.Skip("this machine has I2C buses")
	}
	_, err := Options{Bus: "/dev/i2c-1", Address: 0x20}.Open("hat", nil)
	if err == nil || !strings.Contains(err.Error(), `mcp23017: bus "/dev/i2c-1": not found: no I2C bus (/dev/i2c-*) on this machine`) {
		t.Fatalf("Open: %v", err)
	}
	t.Log(err)
}
