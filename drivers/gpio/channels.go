package gpio

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// validForms names the channel forms, for error messages.
const validForms = `want a line name as the kernel lists it (gpioinfo), e.g. "GPIO26", or a line offset on the chip, e.g. "26"`

// piHeader maps the 40-pin header's physical pin numbers to BCM GPIO numbers
// (every Raspberry Pi since the B+).
var piHeader = map[int]int{
	3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23,
	18: 24, 19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5,
	31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}

// The patterns are compiled on first use (check-config, a gpio channel
// check), not at package init: every start of the bridge, with or without a
// gpio driver, would pay for them before its relays' off writes.
var (
	headerPinRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)^(pin|phys|physical|header|board|p1-|j8-?)\s*(\d+)$`)
	})
	bcmRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^(bcm|gpio)[\s_-]*(\d+)$`) })
)

// CheckChannel implements drivers.ChannelChecker: it refuses, without the
// hardware, channels that cannot name a line: header pin numbers ("pin37"),
// "BCM17", negative offsets. Any other name is left to the chip, which
// check-config asks on the target.
func (o Options) CheckChannel(channel string, output bool) error {
	if m := headerPinRe().FindStringSubmatch(channel); m != nil {
		n, _ := strconv.Atoi(m[2])
		return fmt.Errorf("gpio: channel %q is a header pin number, not a GPIO line: %s%s", channel, validForms, headerHint(n))
	}
	if m := bcmRe().FindStringSubmatch(channel); m != nil {
		// "GPIO017" is not a Raspberry Pi's line name either.
		n, err := strconv.Atoi(m[2])
		if err == nil && channel == "GPIO"+strconv.Itoa(n) {
			return nil
		}
		return fmt.Errorf(`gpio: channel %q: line names are exact; a Raspberry Pi names BCM %d "GPIO%d": %s`, channel, n, n, validForms)
	}
	if n, err := strconv.Atoi(channel); err == nil && n < 0 {
		return fmt.Errorf("gpio: channel %q: a line offset is 0 or more: %s", channel, validForms)
	}
	if strings.TrimSpace(channel) != channel {
		return fmt.Errorf("gpio: channel %q: spaces around the name: %s", channel, validForms)
	}
	return nil
}

// headerHint says which GPIO a Raspberry Pi header pin is.
func headerHint(pin int) string {
	if g, ok := piHeader[pin]; ok {
		return fmt.Sprintf(`; on a Raspberry Pi's 40-pin header, pin %d is GPIO%d: channel "GPIO%d"`, pin, g, g)
	}
	if pin >= 1 && pin <= 40 {
		return fmt.Sprintf("; on a Raspberry Pi's 40-pin header, pin %d is power or ground, not a GPIO", pin)
	}
	return "; a Raspberry Pi's header has pins 1-40"
}

// Board is a Raspberry Pi family whose power-up pulls differ.
type Board int

const (
	// BoardUnknown: not a Raspberry Pi, or check-config runs away from the
	// bridge; every table applies.
	BoardUnknown Board = iota
	// BoardPi14 is a Raspberry Pi 1 to 4 (BCM2835 to BCM2711).
	BoardPi14
	// BoardPi5 is a Raspberry Pi 5 (BCM2712, GPIO on the RP1).
	BoardPi5
)

// DetectBoard reads the device tree's compatible list under sysRoot.
func DetectBoard(sysRoot string) Board {
	b, err := os.ReadFile(filepath.Join(sysRoot, "firmware", "devicetree", "base", "compatible"))
	if err != nil {
		return BoardUnknown
	}
	for _, c := range strings.Split(string(b), "\x00") {
		switch c {
		case "brcm,bcm2712":
			return BoardPi5
		case "brcm,bcm2711", "brcm,bcm2837", "brcm,bcm2836", "brcm,bcm2835":
			return BoardPi14
		}
	}
	return BoardUnknown
}

// PinPull is what may pull a pin while nothing drives it (from power-up
// until doorbridge requests it, and after a released line returns to an
// input).
type PinPull struct {
	Up, Down bool
	// Says is the board's behaviour, for messages ("a Raspberry Pi 1-4
	// pulls GPIO26 down at power-up").
	Says string
}

// PowerUpPull is the pull board applies to GPIO n of its main chip.
//
// A Raspberry Pi 1-4 pulls GPIO0-8 up and GPIO9-27 down (BCM2835 ARM
// Peripherals, the GPIO function table). For a Pi 5's RP1 doorbridge has no
// verified power-up pull (not measured on a board here), so both are
// assumed: a relay there is warned about whatever its active_low.
func PowerUpPull(board Board, n int) (PinPull, bool) {
	if n < 0 || n > 27 {
		return PinPull{}, false
	}
	switch board {
	case BoardPi14:
		if n <= 8 {
			return PinPull{Up: true, Says: fmt.Sprintf("a Raspberry Pi 1-4 pulls GPIO%d up at power-up", n)}, true
		}
		return PinPull{Down: true, Says: fmt.Sprintf("a Raspberry Pi 1-4 pulls GPIO%d down at power-up", n)}, true
	case BoardPi5:
		return PinPull{Up: true, Down: true, Says: fmt.Sprintf("on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO%d (RP1; check with pinctrl get %d while it boots)", n, n)}, true
	}
	return PinPull{}, false
}

// MainChipLine returns n when channel names GPIO n of a Raspberry Pi's main
// GPIO chip: the line name "GPIO<n>", or the offset "<n>" when the chip
// option is empty or names chip 0 or a pinctrl chip (offset n of
// pinctrl-bcm2835/bcm2711/rp1 is GPIO n).
func MainChipLine(chipOpt, channel string) (int, bool) {
	num := strings.TrimPrefix(channel, "GPIO")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 27 || num != strconv.Itoa(n) {
		return 0, false
	}
	if num == channel {
		switch {
		case chipOpt == "", chipOpt == "0", chipOpt == "gpiochip0", chipOpt == "/dev/gpiochip0",
			strings.HasPrefix(chipOpt, "pinctrl-"):
		default:
			return 0, false
		}
	}
	return n, true
}
