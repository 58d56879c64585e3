package mcp23017

import (
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/physic"
)

// chipModel is a register model of an MCP23017 in the IOCON.BANK = 0 map,
// implementing i2c.Bus. It records, for every pin, each level the pin
// presents while it is an output (after every register byte the chip takes).
type chipModel struct {
	addr uint16

	mu   sync.Mutex
	regs [0x16]byte
	ptr  byte
	// ext is the level an outside circuit drives on each pin; nil = floating.
	ext [16]*bool
	// presented lists, per pin, the levels it drove, in order.
	presented [16][]bool
	driving   [16]bool
	fail      error // every Tx fails with it when set
	txs       int
}

func newChipModel(addr uint16) *chipModel {
	c := &chipModel{addr: addr}
	c.regs[regIODIR], c.regs[regIODIR+1] = 0xFF, 0xFF // power-on: inputs
	return c
}

func (c *chipModel) String() string                  { return "model" }
func (c *chipModel) SetSpeed(physic.Frequency) error { return nil }

// Tx implements i2c.Bus: w[0] sets the register pointer, the rest of w is
// written from there, then r is read; the pointer moves as IOCON.SEQOP says.
func (c *chipModel) Tx(addr uint16, w, r []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txs++
	if addr != c.addr {
		return fmt.Errorf("no ACK from %#x", addr)
	}
	if c.fail != nil {
		return c.fail
	}
	if len(w) > 0 {
		if w[0] >= byte(len(c.regs)) {
			return errors.New("register out of range")
		}
		c.ptr = w[0]
		for _, b := range w[1:] {
			c.write(c.ptr, b)
			c.next()
		}
	}
	for i := range r {
		r[i] = c.read(c.ptr)
		c.next()
	}
	return nil
}

func (c *chipModel) next() {
	if c.regs[regIOCON]&0x20 != 0 { // SEQOP=1, BANK=0: toggle within the A/B pair
		c.ptr ^= 1
		return
	}
	c.ptr = (c.ptr + 1) % byte(len(c.regs))
}

func (c *chipModel) write(reg, b byte) {
	switch reg {
	case regIOCON, regIOCON + 1:
		c.regs[regIOCON], c.regs[regIOCON+1] = b, b
	case regGPIO, regGPIO + 1: // a GPIO write writes the latch
		c.regs[reg+2] = b
	case 0x0E, 0x0F, 0x10, 0x11: // INTF, INTCAP: read-only
	default:
		c.regs[reg] = b
	}
	for p := range pin(16) {
		out := c.regs[regIODIR+p.port()]&p.mask() == 0
		lvl := c.regs[regOLAT+p.port()]&p.mask() != 0
		n := len(c.presented[p])
		if out && (!c.driving[p] || n == 0 || c.presented[p][n-1] != lvl) {
			c.presented[p] = append(c.presented[p], lvl)
		}
		c.driving[p] = out
	}
}

func (c *chipModel) read(reg byte) byte {
	if reg != regGPIO && reg != regGPIO+1 {
		return c.regs[reg]
	}
	port := reg - regGPIO
	var v byte
	for i := range byte(8) {
		p := pin(port*8 + i)
		var lvl bool
		switch {
		case c.regs[regIODIR+port]&p.mask() == 0:
			lvl = c.regs[regOLAT+port]&p.mask() != 0
		case c.ext[p] != nil:
			lvl = *c.ext[p]
		default: // floating: the pull-up decides, else it reads low
			lvl = c.regs[regGPPU+port]&p.mask() != 0
		}
		if lvl != (c.regs[regIPOL+port]&p.mask() != 0) {
			v |= p.mask()
		}
	}
	return v
}

// drive sets (or with nil, releases) the outside level on pin p.
func (c *chipModel) drive(p pin, lvl *bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ext[p] = lvl
}

func (c *chipModel) reg(r byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[r]
}

func (c *chipModel) setReg(r, v byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regs[r] = v
}

func (c *chipModel) history(p pin) []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.presented[p]...)
}

func (c *chipModel) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

// preload sets registers as a previous run left them (not an output history).
func (c *chipModel) preload(reg byte, v byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regs[reg] = v
	for p := range pin(16) {
		out := c.regs[regIODIR+p.port()]&p.mask() == 0
		c.driving[p] = out
		c.presented[p] = nil
		if out {
			c.presented[p] = []bool{c.regs[regOLAT+p.port()]&p.mask() != 0}
		}
	}
}
