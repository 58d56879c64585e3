package mcp23017

import (
	"github.com/doorbridge/doorbridge/drivers"
)

// output is one pin driven through the output latch.
type output struct {
	d *Driver
	p pin
}

// Set implements drivers.Output: it rewrites the pin's port latch with only
// this pin's bit changed.
func (o *output) Set(level bool) error {
	o.d.mu.Lock()
	defer o.d.mu.Unlock()
	if err := o.d.writeOLATLocked(o.p, level); err != nil {
		return o.d.errorf(o.p, "set %s: %w", onOff(level), err)
	}
	return nil
}

// Level implements drivers.Output: the latch bit last written successfully.
func (o *output) Level() bool {
	o.d.mu.Lock()
	defer o.d.mu.Unlock()
	return o.d.olat[o.p.port()]&o.p.mask() != 0
}

// input is one input pin.
type input struct {
	d *Driver
	p pin
}

// Read implements drivers.Input: it reads the pin's GPIO port register.
func (in *input) Read() (bool, error) {
	in.d.mu.Lock()
	defer in.d.mu.Unlock()
	r := regGPIO + in.p.port()
	var b [1]byte
	if err := in.d.dev.Tx([]byte{r}, b[:]); err != nil {
		return false, in.d.errorf(in.p, "read %s: %w", regName(r), err)
	}
	return b[0]&in.p.mask() != 0, nil
}

var (
	_ drivers.Output = (*output)(nil)
	_ drivers.Input  = (*input)(nil)
)
