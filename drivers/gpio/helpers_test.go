package gpio

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/doorbridge/doorbridge/drivers"
)

// testPin is a periph gpiotest.Pin (wrapped) that the test
// can drive from outside.
type testPin interface {
	gpio.PinIO
	drive(gpio.Level)
}

// recPin records every configuration and write the driver makes on a pin,
// in order, and can fail writes and reads.
type recPin struct {
	testPin

	mu      sync.Mutex
	ops     []string
	outErr  error
	readErr error
}

func (p *recPin) Out(l gpio.Level) error {
	p.mu.Lock()
	p.ops = append(p.ops, "Out("+l.String()+")")
	err := p.outErr
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.testPin.Out(l)
}

func (p *recPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	p.ops = append(p.ops, "In("+pull.String()+")")
	p.mu.Unlock()
	return p.testPin.In(pull, edge)
}

// ReadLevel makes recPin a levelReader, so read errors can be injected.
func (p *recPin) ReadLevel() (gpio.Level, error) {
	p.mu.Lock()
	err := p.readErr
	p.mu.Unlock()
	if err != nil {
		return gpio.Low, err
	}
	return p.testPin.Read(), nil
}

func (p *recPin) Ops() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ops...)
}

func (p *recPin) fail(out, read error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outErr, p.readErr = out, read
}

// testLines implements Lines: channels "GPIO<n>" and "<n>" name pin n.
type testLines struct {
	mu     sync.Mutex
	pins   map[int]*recPin
	closed bool
}

func newTestLines(n int) *testLines {
	tl := &testLines{pins: map[int]*recPin{}}
	for i := range n {
		// Every pin starts high: a fresh output must still start at its
		// initial level, not at whatever the pin showed.
		tl.pins[i] = &recPin{testPin: newTestPin(fmt.Sprintf("GPIO%d", i), i, gpio.High)}
	}
	return tl
}

func (tl *testLines) Line(channel string) (gpio.PinIO, error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for n, p := range tl.pins {
		if channel == p.Name() || channel == fmt.Sprint(n) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("gpio: channel %q: %w", channel, drivers.ErrUnknownChannel)
}

func (tl *testLines) Close() error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.closed = true
	return nil
}

// fakeClock is a manual clock for debounce tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestDriver(t *testing.T, o Options) (*Driver, *testLines, *fakeClock) {
	t.Helper()
	tl := newTestLines(8)
	d := New(o, tl)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clk.now
	t.Cleanup(func() { _ = d.Close() })
	return d, tl, clk
}
