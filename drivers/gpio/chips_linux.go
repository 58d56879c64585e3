//go:build linux

package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/doorbridge/doorbridge/drivers"
)

// chip is one opened GPIO chip.
type chip struct {
	info *gpioioctl.GPIOChip // periph's view: name, label, path, line names
	fd   int                 // our own handle on the chip, for line requests
}

func (c *chip) String() string { return c.info.Name() }

// chipLines implements Lines on the Linux GPIO character device.
type chipLines struct {
	consumer string
	chips    []*chip // candidate chips, in periph's order (pinctrl-* first)
	selected bool    // the chip option named one chip
	log      *slog.Logger

	mu    sync.Mutex
	lines []*cdevLine
}

// openChips discovers the GPIO chips with periph and opens the one named by
// chipOpt, or every chip when chipOpt is empty.
func openChips(chipOpt, consumer string, log *slog.Logger) (*chipLines, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("gpio: periph host init: %w", err)
	}
	all := gpioioctl.Chips
	what := "no GPIO chip found"
	if chipOpt != "" {
		what = fmt.Sprintf("chip %q: not found", chipOpt)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("gpio: %s: no GPIO character device (/dev/gpiochip*, or none readable): %w", what, drivers.ErrNoHardware)
	}
	var infos []*gpioioctl.GPIOChip
	for _, c := range all {
		if chipOpt == "" || chipMatches(c, chipOpt) {
			infos = append(infos, c)
		}
	}
	if len(infos) == 0 {
		have := make([]string, 0, len(all))
		for _, c := range all {
			have = append(have, fmt.Sprintf("%s %q", c.Name(), c.Label()))
		}
		return nil, fmt.Errorf("gpio: %s (have %s)", what, strings.Join(have, ", "))
	}
	cl := &chipLines{consumer: consumer, selected: chipOpt != "", log: log}
	for _, info := range infos {
		fd, err := unix.Open(info.Path(), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			_ = cl.Close()
			return nil, fmt.Errorf("gpio: chip %s (%s): open: %w", info.Name(), info.Path(), err)
		}
		cl.chips = append(cl.chips, &chip{info: info, fd: fd})
		log.Info("gpio chip opened", "chip", info.Name(), "label", info.Label(), "path", info.Path(), "lines", info.LineCount())
	}
	return cl, nil
}

// Probe implements drivers.Prober: it opens the chip(s) and resolves every
// channel to a line, without requesting any.
func (o Options) Probe(channels []string) error {
	cl, err := openChips(o.Chip, "doorbridge-check", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer cl.Close()
	var errs []error
	for _, ch := range channels {
		if _, _, _, err := cl.resolve(ch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chipMatches reports whether opt names c by name, number, path or label.
func chipMatches(c *gpioioctl.GPIOChip, opt string) bool {
	return opt == c.Name() || "gpiochip"+opt == c.Name() || opt == c.Path() || opt == c.Label()
}

// Line implements Lines.
func (cl *chipLines) Line(channel string) (gpio.PinIO, error) {
	c, offset, name, err := cl.resolve(channel)
	if err != nil {
		return nil, err
	}
	l := &cdevLine{chip: c, offset: uint32(offset), name: name, consumer: cl.consumer, fd: -1}
	cl.mu.Lock()
	cl.lines = append(cl.lines, l)
	cl.mu.Unlock()
	cl.log.Debug("gpio line resolved", "channel", channel, "line", name, "offset", offset, "chip", c.info.Name())
	return l, nil
}

// resolve finds the chip and offset of a channel (an offset or a line name).
func (cl *chipLines) resolve(channel string) (*chip, int, string, error) {
	if n, err := strconv.Atoi(channel); err == nil {
		if len(cl.chips) != 1 {
			return nil, 0, "", fmt.Errorf("gpio: channel %q: an offset is ambiguous with %d chips (%s): set the chip option or use a line name", channel, len(cl.chips), cl.chipNames())
		}
		c := cl.chips[0]
		if n < 0 || n >= c.info.LineCount() {
			return nil, 0, "", fmt.Errorf("gpio: channel %q: offset out of range on %s (%d lines): %w", channel, c, c.info.LineCount(), drivers.ErrUnknownChannel)
		}
		return c, n, c.info.ByNumber(n).Name(), nil
	}
	var found []*chip
	var offset int
	for _, c := range cl.chips {
		if l := c.info.ByName(channel); l != nil {
			found = append(found, c)
			offset = l.Number()
		}
	}
	switch len(found) {
	case 0:
		return nil, 0, "", fmt.Errorf("gpio: channel %q: no line of that name on %s: %w", channel, cl.chipNames(), drivers.ErrUnknownChannel)
	case 1:
		return found[0], offset, channel, nil
	}
	names := make([]string, len(found))
	for i, c := range found {
		names[i] = c.String()
	}
	return nil, 0, "", fmt.Errorf("gpio: channel %q: line name found on several chips (%s): set the chip option", channel, strings.Join(names, ", "))
}

func (cl *chipLines) chipNames() string {
	names := make([]string, len(cl.chips))
	for i, c := range cl.chips {
		names[i] = c.String()
	}
	return strings.Join(names, ", ")
}

// Close implements Lines: it releases every requested line, then the chips.
func (cl *chipLines) Close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var errs []error
	for _, l := range cl.lines {
		errs = append(errs, l.Close())
	}
	cl.lines = nil
	for _, c := range cl.chips {
		if c.fd >= 0 {
			if err := unix.Close(c.fd); err != nil {
				errs = append(errs, fmt.Errorf("chip %s: %w", c, err))
			}
			c.fd = -1
		}
	}
	return errors.Join(errs...)
}
