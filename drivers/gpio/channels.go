package gpio

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

var (
	headerPinRe = regexp.MustCompile(`(?i)^(pin|phys|physical|header|board|p1-|j8-?)\s*(\d+)$`)
	bcmRe       = regexp.MustCompile(`(?i)^(bcm|gpio)[\s_-]*(\d+)$`)
)

// CheckChannel implements drivers.ChannelChecker: it refuses, without the
// hardware, channels that cannot name a line: header pin numbers ("pin37"),
// "BCM17", negative offsets. Any other name is left to the chip, which
// check-config asks on the target.
func (o Options) CheckChannel(channel string, output bool) error {
	if m := headerPinRe.FindStringSubmatch(channel); m != nil {
		n, _ := strconv.Atoi(m[2])
		return fmt.Errorf("gpio: channel %q is a header pin number, not a GPIO line: %s%s", channel, validForms, headerHint(n))
	}
	if m := bcmRe.FindStringSubmatch(channel); m != nil && channel != "GPIO"+m[2] {
		n, _ := strconv.Atoi(m[2])
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

// PiDefaultPull is the pull a Raspberry Pi 1-4 (BCM2835 to BCM2711) applies
// to line "GPIO<n>" at power-up, before anything drives it: GPIO0-8 are
// pulled up, GPIO9-27 down. ok is false for other names.
func PiDefaultPull(channel string) (up bool, ok bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(channel, "GPIO"))
	if err != nil || !strings.HasPrefix(channel, "GPIO") || n < 0 || n > 27 {
		return false, false
	}
	return n <= 8, true
}
