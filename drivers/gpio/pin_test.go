//go:build !gpiotest

package gpio

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// fakePin mirrors periph's gpiotest.Pin (same fields and semantics: In with a
// pull drives L to the pulled level, Out sets L). gpiotest imports
// github.com/jonboulle/clockwork, which go.sum does not list yet; build with
// -tags gpiotest (after `go get periph.io/x/conn/v3/gpio/gpiotest@v3.7.3`) to
// run the same tests on gpiotest.Pin itself.
type fakePin struct {
	N   string
	Num int

	sync.Mutex
	L gpio.Level
	P gpio.Pull
}

func newTestPin(name string, num int, l gpio.Level) testPin {
	return &fakePin{N: name, Num: num, L: l}
}

func (p *fakePin) String() string   { return fmt.Sprintf("%s(%d)", p.N, p.Num) }
func (p *fakePin) Halt() error      { return nil }
func (p *fakePin) Name() string     { return p.N }
func (p *fakePin) Number() int      { return p.Num }
func (p *fakePin) Function() string { return "" }

func (p *fakePin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.Lock()
	defer p.Unlock()
	p.P = pull
	if pull == gpio.PullDown {
		p.L = gpio.Low
	} else if pull == gpio.PullUp {
		p.L = gpio.High
	}
	if edge != gpio.NoEdge {
		return errors.New("fakePin: no edges")
	}
	return nil
}

func (p *fakePin) Read() gpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

func (p *fakePin) WaitForEdge(time.Duration) bool { return false }
func (p *fakePin) Pull() gpio.Pull                { p.Lock(); defer p.Unlock(); return p.P }
func (p *fakePin) DefaultPull() gpio.Pull         { return gpio.PullNoChange }

func (p *fakePin) Out(l gpio.Level) error {
	p.Lock()
	defer p.Unlock()
	p.L = l
	return nil
}

func (p *fakePin) PWM(gpio.Duty, physic.Frequency) error { return errors.New("fakePin: no PWM") }

// drive sets the level an outside circuit puts on the pin.
func (p *fakePin) drive(l gpio.Level) {
	p.Lock()
	defer p.Unlock()
	p.L = l
}
