package mcp23017

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"periph.io/x/conn/v3/i2c"

	"github.com/doorbridge/doorbridge/drivers"
)

// Driver is an opened MCP23017.
type Driver struct {
	dev    i2c.Dev
	desc   string // "0x20 on /dev/i2c-1", for errors
	pullUp bool
	log    *slog.Logger
	closer io.Closer // the bus, when Open opened it

	mu sync.Mutex
	// Shadows of the chip's registers, [0] = port A, [1] = port B. They hold
	// what the chip holds: updated only after a write succeeded.
	iodir, ipol, gppu, olat [2]byte
	used                    [16]string // "output" or "input" once opened
	closed                  bool
}

// New checks the chip at o.Address on bus and reads its registers (what
// tests call with a register model). It changes nothing on the chip.
func New(bus i2c.Bus, o Options, log *slog.Logger) (*Driver, error) {
	if o.Address == 0 {
		o.Address = DefaultAddress
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := o.Bus
	if name == "" {
		name = bus.String()
	}
	d := &Driver{
		dev:    i2c.Dev{Bus: bus, Addr: uint16(o.Address)},
		desc:   fmt.Sprintf("%#x on %s", o.Address, name),
		pullUp: o.PullUp,
		log:    log,
	}
	var iocon [2]byte
	if err := d.dev.Tx([]byte{regIOCON}, iocon[:]); err != nil {
		return nil, fmt.Errorf("mcp23017: %s: no answer (is the board at this address?): %w", d.desc, err)
	}
	// In BANK=0 both addresses are IOCON. In BANK=1, 0x0A is OLATA and 0x0B
	// unimplemented; IOCON.BANK can only read 1 at 0x0A in BANK=1.
	if iocon[0] != iocon[1] || iocon[0]&ioconBank != 0 {
		return nil, fmt.Errorf("mcp23017: %s: registers 0x0A/0x0B read %#02x/%#02x, not the IOCON.BANK=0 map: another program set IOCON.BANK=1? power-cycle the board", d.desc, iocon[0], iocon[1])
	}
	for _, r := range []struct {
		reg byte
		dst *[2]byte
	}{{regIODIR, &d.iodir}, {regIPOL, &d.ipol}, {regGPPU, &d.gppu}, {regOLAT, &d.olat}} {
		if err := d.dev.Tx([]byte{r.reg}, r.dst[:]); err != nil {
			return nil, fmt.Errorf("mcp23017: %s: read %s/%s: %w", d.desc, regName(r.reg), regName(r.reg+1), err)
		}
	}
	log.Info("mcp23017 found", "address", fmt.Sprintf("%#x", o.Address), "bus", name,
		"iodir", fmt.Sprintf("%#04x%02x", d.iodir[1], d.iodir[0]), "olat", fmt.Sprintf("%#04x%02x", d.olat[1], d.olat[0]), "iocon", fmt.Sprintf("%#02x", iocon[0]))
	return d, nil
}

// OpenOutput implements drivers.Driver. It writes the pin's latch with
// initial before making it an output.
func (d *Driver) OpenOutput(channel string, initial bool) (drivers.Output, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.claimLocked(channel, "output")
	if err != nil {
		return nil, err
	}
	if err := d.writeOLATLocked(p, initial); err != nil {
		d.used[p] = ""
		return nil, d.errorf(p, "open at %s: %w", onOff(initial), err)
	}
	if err := d.updateLocked(regIODIR, &d.iodir, p, false); err != nil {
		d.used[p] = ""
		return nil, d.errorf(p, "open at %s: %w", onOff(initial), err)
	}
	d.log.Info("mcp23017 output opened", "channel", channel, "pin", p.String(), "initial", initial)
	return &output{d: d, p: p}, nil
}

// OpenInput implements drivers.InputOpener. opts.Pull is "" (the pull_up
// option decides), "up" or "none"; the chip has no pull-down.
func (d *Driver) OpenInput(channel string, opts drivers.InputOptions) (drivers.Input, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pullUp := d.pullUp
	switch opts.Pull {
	case "":
	case "up":
		pullUp = true
	case "none":
		pullUp = false
	default:
		return nil, fmt.Errorf("mcp23017: %s: channel %q: pull %q: want \"\", \"up\" or \"none\" (no pull-down on the chip)", d.desc, channel, opts.Pull)
	}
	p, err := d.claimLocked(channel, "input")
	if err != nil {
		return nil, err
	}
	if p%8 == 7 {
		d.used[p] = ""
		return nil, d.errorf(p, "%s is output only on the MCP23017 (datasheet rev. C): use it for a relay", p)
	}
	// Pull-up and polarity first, then the direction: the pin is an input
	// with its final bias from the moment it stops driving.
	for _, step := range []struct {
		reg byte
		sh  *[2]byte
		set bool
	}{{regGPPU, &d.gppu, pullUp}, {regIPOL, &d.ipol, false}, {regIODIR, &d.iodir, true}} {
		if err := d.updateLocked(step.reg, step.sh, p, step.set); err != nil {
			d.used[p] = ""
			return nil, d.errorf(p, "open as input: %w", err)
		}
	}
	d.log.Info("mcp23017 input opened", "channel", channel, "pin", p.String(), "pull_up", pullUp)
	return &input{d: d, p: p}, nil
}

// Close implements drivers.Driver: it closes the bus if Open opened it. Pins
// keep their state.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.closer != nil {
		if err := d.closer.Close(); err != nil {
			return fmt.Errorf("mcp23017: %s: close bus: %w", d.desc, err)
		}
	}
	return nil
}

func (d *Driver) claimLocked(channel, as string) (pin, error) {
	if d.closed {
		return 0, fmt.Errorf("mcp23017: %s: channel %q: driver closed", d.desc, channel)
	}
	p, err := parsePin(channel)
	if err != nil {
		return 0, fmt.Errorf("mcp23017: %s: channel %q: %w", d.desc, channel, err)
	}
	if d.used[p] != "" {
		return 0, d.errorf(p, "already open as an %s: %w", d.used[p], drivers.ErrChannelBusy)
	}
	d.used[p] = as
	return p, nil
}

// writeOLATLocked writes p's port latch with p's bit at level.
func (d *Driver) writeOLATLocked(p pin, level bool) error {
	return d.writeLocked(regOLAT, &d.olat, p, level, true)
}

// updateLocked sets p's bit of a port register to set, writing only when the
// register changes.
func (d *Driver) updateLocked(reg byte, shadow *[2]byte, p pin, set bool) error {
	return d.writeLocked(reg, shadow, p, set, false)
}

func (d *Driver) writeLocked(reg byte, shadow *[2]byte, p pin, set, always bool) error {
	v := shadow[p.port()] &^ p.mask()
	if set {
		v |= p.mask()
	}
	if v == shadow[p.port()] && !always {
		return nil
	}
	r := reg + p.port()
	if err := d.dev.Tx([]byte{r, v}, nil); err != nil {
		return fmt.Errorf("write %s=%#02x: %w", regName(r), v, err)
	}
	shadow[p.port()] = v
	return nil
}

// errorf formats an error naming the chip and the channel.
func (d *Driver) errorf(p pin, format string, args ...any) error {
	return fmt.Errorf("mcp23017: %s: channel %d (%s): "+format, append([]any{d.desc, int(p), p}, args...)...)
}

func onOff(level bool) string {
	if level {
		return "high"
	}
	return "low"
}

var (
	_ drivers.Driver      = (*Driver)(nil)
	_ drivers.InputOpener = (*Driver)(nil)
)
