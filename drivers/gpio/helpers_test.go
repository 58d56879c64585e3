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

// fakeClock is a manual clock for debounce tests (an input's edge watcher
// reads it from its own goroutine).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// edgePin is a recPin that reports edge events (edgeWaiter), as the
// character device does: the test sends each edge's level on edges.
type edgePin struct {
	*recPin
	edges  chan gpio.Level
	closed chan struct{}
	refuse error // In with edges fails with it (a chip without interrupts)
	edge   gpio.Edge
	closes int           // Close calls (the line request released)
	stamp  time.Duration // kernel timestamp of the next edge (0: none)
}

// EdgeTime makes edgePin an edgeStamper.
func (p *edgePin) EdgeTime() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stamp
}

// stampNext sets the kernel timestamp of the edges sent from now on.
func (p *edgePin) stampNext(ts time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stamp = ts
}

// Close releases the line, as the character device's Close does.
func (p *edgePin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closes++
	return nil
}

func newEdgePin(p *recPin) *edgePin {
	return &edgePin{recPin: p, edges: make(chan gpio.Level), closed: make(chan struct{})}
}

func (p *edgePin) In(pull gpio.Pull, edge gpio.Edge) error {
	if edge != gpio.NoEdge && p.refuse != nil {
		return p.refuse
	}
	p.edge = edge
	return p.recPin.In(pull, gpio.NoEdge)
}

func (p *edgePin) WaitEdge(timeout time.Duration) (gpio.Level, bool, error) {
	select {
	case lv := <-p.edges:
		return lv, true, nil
	case <-p.closed:
		return gpio.Low, false, errLineClosed
	case <-time.After(timeout):
		return gpio.Low, false, nil
	}
}

func newTestDriver(t *testing.T, o Options) (*Driver, *testLines, *fakeClock) {
	t.Helper()
	tl := newTestLines(8)
	d := New(o, tl)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clk.now
	t.Cleanup(func() { _ = d.Close() })
	return d, tl, clk
}

// lineMap is testLines with some channels served by other pins.
type lineMap struct {
	*testLines
	over map[string]gpio.PinIO
}

func (m lineMap) Line(channel string) (gpio.PinIO, error) {
	if p, ok := m.over[channel]; ok {
		return p, nil
	}
	return m.testLines.Line(channel)
}

// waitFor waits, with a generous deadline, until cond holds.
func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+format, args...)
		}
		time.Sleep(time.Millisecond)
	}
}
