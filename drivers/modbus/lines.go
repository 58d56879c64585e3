package modbus

import (
	"fmt"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/doorbridge/doorbridge/drivers"
)

// coil is an output: one coil of the board.
type coil struct {
	d    *Driver
	addr uint16

	mu    sync.Mutex
	level bool
}

// Set implements drivers.Output. It blocks at most the timeout.
func (c *coil) Set(level bool) error {
	if err := c.write(level); err != nil {
		return fmt.Errorf("modbus: %s: coil %d: set %s: %w", c.d.desc, c.addr, onOff(level), err)
	}
	return nil
}

// write writes the coil on the worker. Level follows writes the board
// acknowledged, even one that completes after its caller gave up.
func (c *coil) write(level bool) error {
	return c.d.do(func(mc *modbus.ModbusClient) error {
		if err := mc.WriteCoil(c.addr, level); err != nil {
			return err
		}
		c.mu.Lock()
		c.level = level
		c.mu.Unlock()
		return nil
	})
}

// Level implements drivers.Output.
func (c *coil) Level() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.level
}

// input is one discrete input, served from the poller's cache.
type input struct {
	d    *Driver
	addr uint16

	// guarded by d.mu
	value bool
	at    time.Time // last successful read
	err   error     // error of the last read, nil if it succeeded
}

// Cached implements drivers.Cached: Read never waits on a board.
func (in *input) Cached() {}

// Read implements drivers.Input: the value of the last poll. It fails when
// the last poll failed or no poll succeeded for a while.
func (in *input) Read() (bool, error) {
	in.d.mu.Lock()
	defer in.d.mu.Unlock()
	if in.err != nil {
		return in.value, fmt.Errorf("modbus: %s: discrete input %d: last poll failed: %w", in.d.desc, in.addr, in.err)
	}
	if age := time.Since(in.at); age > in.d.staleAfter {
		return in.value, fmt.Errorf("modbus: %s: discrete input %d: no successful poll for %s", in.d.desc, in.addr, age.Round(time.Millisecond))
	}
	return in.value, nil
}

var (
	_ drivers.Output = (*coil)(nil)
	_ drivers.Input  = (*input)(nil)
)
