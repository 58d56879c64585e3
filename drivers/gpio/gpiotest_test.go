package gpio

import (
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// gtPin runs the tests on periph's own gpiotest.Pin.
type gtPin struct{ *gpiotest.Pin }

func newTestPin(name string, num int, l gpio.Level) testPin {
	return gtPin{&gpiotest.Pin{N: name, Num: num, L: l}}
}

// drive sets the level an outside circuit puts on the pin.
func (p gtPin) drive(l gpio.Level) {
	p.Lock()
	defer p.Unlock()
	p.L = l
}
