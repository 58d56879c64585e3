package modbus

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/doorbridge/doorbridge/drivers"
)

// errClosed is returned by operations on a closed driver.
var errClosed = errors.New("driver closed")

// Driver is an opened Modbus board.
type Driver struct {
	opts       Options
	desc       string // "tcp://host:502 unit 1", for errors
	log        *slog.Logger
	staleAfter time.Duration

	link *link // owned by the worker goroutine once New returns

	ops       chan *op
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	coils  map[uint16]*coil
	inputs map[uint16]*input
}

// op is one piece of work for the worker goroutine.
type op struct {
	deadline time.Time // the caller gives up then; the worker skips it after
	run      func(*modbus.ModbusClient) error
	done     chan error // buffered: the worker never blocks on a caller
}

// New connects to the board described by o (zero fields take the defaults)
// and starts the worker goroutine. It fails when the board cannot be reached.
func New(o Options, log *slog.Logger) (*Driver, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		opts:       o,
		desc:       fmt.Sprintf("%s unit %d", o.URL, o.UnitID),
		log:        log,
		staleAfter: 3*o.PollInterval + 2*o.Timeout,
		link:       newLink(o, log),
		ops:        make(chan *op),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		coils:      map[uint16]*coil{},
		inputs:     map[uint16]*input{},
	}
	if _, err := d.link.get(); err != nil {
		return nil, fmt.Errorf("modbus: %s: %w", d.desc, err)
	}
	log.Info("modbus board connected", "url", o.URL, "unit_id", o.UnitID, "timeout", o.Timeout, "poll_interval", o.PollInterval)
	go d.run()
	return d, nil
}

func (o Options) withDefaults() Options {
	if o.UnitID == 0 {
		o.UnitID = DefaultUnitID
	}
	if o.Speed == 0 {
		o.Speed = DefaultSpeed
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o
}

// OpenOutput implements drivers.Driver: channel is a coil address, and the
// initial level is written at once.
func (d *Driver) OpenOutput(channel string, initial bool) (drivers.Output, error) {
	addr, err := parseAddr(channel)
	if err != nil {
		return nil, fmt.Errorf("modbus: %s: coil %q: %w", d.desc, channel, err)
	}
	c := &coil{d: d, addr: addr}
	d.mu.Lock()
	if _, busy := d.coils[addr]; busy {
		d.mu.Unlock()
		return nil, fmt.Errorf("modbus: %s: coil %d: %w", d.desc, addr, drivers.ErrChannelBusy)
	}
	d.coils[addr] = c
	d.mu.Unlock()
	if err := c.write(initial); err != nil {
		d.mu.Lock()
		delete(d.coils, addr)
		d.mu.Unlock()
		return nil, fmt.Errorf("modbus: %s: coil %d: write initial %s: %w", d.desc, addr, onOff(initial), err)
	}
	d.log.Info("modbus coil opened", "coil", addr, "initial", initial)
	return c, nil
}

// OpenInput implements drivers.InputOpener: channel is a discrete input
// address. A board's inputs have fixed wiring, so opts.Pull must be "" or
// "none". The input is read once before OpenInput returns.
func (d *Driver) OpenInput(channel string, opts drivers.InputOptions) (drivers.Input, error) {
	addr, err := parseAddr(channel)
	if err != nil {
		return nil, fmt.Errorf("modbus: %s: discrete input %q: %w", d.desc, channel, err)
	}
	if opts.Pull != "" && opts.Pull != "none" {
		return nil, fmt.Errorf("modbus: %s: discrete input %d: pull %q: a Modbus board has no configurable pull, want \"\" or \"none\"", d.desc, addr, opts.Pull)
	}
	in := &input{d: d, addr: addr}
	d.mu.Lock()
	if _, busy := d.inputs[addr]; busy {
		d.mu.Unlock()
		return nil, fmt.Errorf("modbus: %s: discrete input %d: %w", d.desc, addr, drivers.ErrChannelBusy)
	}
	d.inputs[addr] = in
	d.mu.Unlock()
	err = d.do(func(mc *modbus.ModbusClient) error {
		v, err := mc.ReadDiscreteInput(addr)
		d.store(span{addr, 1}, []bool{v}, err, time.Now())
		return err
	})
	if err != nil {
		d.mu.Lock()
		delete(d.inputs, addr)
		d.mu.Unlock()
		return nil, fmt.Errorf("modbus: %s: discrete input %d: first read: %w", d.desc, addr, err)
	}
	d.log.Info("modbus discrete input opened", "input", addr)
	return in, nil
}

// Close implements drivers.Driver: it stops the poller and closes the link.
// Coils keep their level.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() { close(d.quit) })
	<-d.done
	return nil
}

// do runs fn on the worker and waits for it, at most the timeout.
func (d *Driver) do(fn func(*modbus.ModbusClient) error) error {
	t := time.NewTimer(d.opts.Timeout)
	defer t.Stop()
	o := &op{deadline: time.Now().Add(d.opts.Timeout), run: fn, done: make(chan error, 1)}
	select {
	case d.ops <- o:
	case <-t.C:
		return fmt.Errorf("link busy for %s (reconnecting or a slow request)", d.opts.Timeout)
	case <-d.quit:
		return errClosed
	}
	select {
	case err := <-o.done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %s", d.opts.Timeout)
	case <-d.done:
		return errClosed
	}
}

// parseAddr parses a 0-based coil or discrete input address.
func parseAddr(channel string) (uint16, error) {
	n, err := strconv.ParseUint(channel, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("want an address 0-65535: %w", drivers.ErrUnknownChannel)
	}
	return uint16(n), nil
}

func onOff(level bool) string {
	if level {
		return "on"
	}
	return "off"
}

var (
	_ drivers.Driver      = (*Driver)(nil)
	_ drivers.InputOpener = (*Driver)(nil)
)
