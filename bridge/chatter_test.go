package bridge

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
	gpiodrv "github.com/doorbridge/doorbridge/drivers/gpio"
)

// chatterPin is a GPIO line with edge events that, while chatter is set,
// changes level every 2 ms (a power-good contact with hum on it).
type chatterPin struct {
	*gpiotest.Pin
	chatter atomic.Bool
	closed  chan struct{}
}

func (p *chatterPin) WaitEdge(timeout time.Duration) (gpio.Level, bool, error) {
	if !p.chatter.Load() {
		select {
		case <-p.closed:
			return gpio.Low, false, drivers.ErrUnknownChannel
		case <-time.After(min(timeout, 10*time.Millisecond)):
			return gpio.Low, false, nil
		}
	}
	select {
	case <-p.closed:
		return gpio.Low, false, drivers.ErrUnknownChannel
	case <-time.After(2 * time.Millisecond): // the hum's period, not a wait for an outcome
	}
	p.Lock()
	defer p.Unlock()
	if !p.chatter.Load() {
		return gpio.Low, false, nil // stopped meanwhile: the test set the level
	}
	p.L = !p.L
	return p.L, true, nil
}

// settle stops the chatter with the line at l.
func (p *chatterPin) settle(l gpio.Level) {
	p.Lock()
	defer p.Unlock()
	p.chatter.Store(false)
	p.L = l
}

// chatterLines serves one chatterPin as channel "GPIO5".
type chatterLines struct {
	pin  *chatterPin
	once sync.Once
}

func (c *chatterLines) Line(string) (gpio.PinIO, error) { return c.pin, nil }

func (c *chatterLines) Close() error {
	c.once.Do(func() { close(c.pin.closed) })
	return nil
}

// TestChatteringPowerInputCountsAsLost: a power-good input that chatters
// never settles, so its debounced level would stay "power good" for ever;
// the gpio driver reports chattering as a read error and the power source,
// unreadable, counts as lost (R24, R8): the fail-safe door is released.
// Once the line settles, power is good again.
func TestChatteringPowerInputCountsAsLost(t *testing.T) {
	pin := &chatterPin{Pin: &gpiotest.Pin{N: "GPIO5", Num: 5, L: gpio.High, EdgesChan: make(chan gpio.Level, 1)}, closed: make(chan struct{})}
	// A long debounce: a hiccup of the test machine's scheduler must not
	// look like the line settling (chattering needs 10 windows).
	hat := gpiodrv.New(gpiodrv.Options{Debounce: 200 * time.Millisecond}, &chatterLines{pin: pin})
	h := newHarnessWith(t, func(cfg *config.Config) {
		cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "hat", Type: "gpio"})
		cfg.Power = []config.PowerSource{{Type: config.PowerInput, Name: "psu", Driver: "hat", Channel: "GPIO5",
			PollInterval: 50 * time.Millisecond, Timeout: time.Second}}
	}, func(h *harness) { h.more = map[string]drivers.Driver{"hat": hat} })
	h.ready()
	h.c.WaitPayload("db/t1/power/state", "ON", wait)
	h.waitPower("0", true, wait, "power good: the maglock is powered")

	pin.chatter.Store(true)
	h.waitPower("0", false, 3*wait, "a chattering power-good input counts as lost: the maglock is released")
	h.c.WaitPayload(h.topic("fs", "cause"), "power", wait)

	pin.settle(gpio.High)
	h.waitPower("0", true, 3*wait, "the line settled at power good: relocked")
}
