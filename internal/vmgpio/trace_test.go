package vmgpio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const tracefs = "/sys/kernel/tracing"

// gpioTrace records the kernel's gpio tracepoints (gpio_direction, and
// gpio_value for every level set) of one chip: every level gpiolib drives
// on a line, however short, not samples of it.
type gpioTrace struct {
	t    *testing.T
	base int // the chip's first global GPIO number, as the events name lines
}

// traceEvent is one gpio event of the chip: kind "set" (a level driven),
// "out" or "in" (a direction change).
type traceEvent struct {
	line  int
	kind  string
	value int
}

// startTrace clears the trace buffer and enables the gpio events. Debian's
// kernel has them (CONFIG_EVENT_TRACING, include/trace/events/gpio.h): their
// absence fails the test rather than letting it pass unchecked.
func startTrace(t *testing.T, c *simChip) *gpioTrace {
	t.Helper()
	if _, err := os.Stat(filepath.Join(tracefs, "events")); err != nil {
		if err := syscall.Mount("nodev", tracefs, "tracefs", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("mount tracefs on %s: %v", tracefs, err)
		}
	}
	for _, ev := range []string{"gpio_value", "gpio_direction"} {
		if _, err := os.Stat(filepath.Join(tracefs, "events/gpio", ev, "enable")); err != nil {
			t.Fatalf("this kernel has no gpio/%s tracepoint: %v", ev, err)
		}
	}
	tr := &gpioTrace{t: t, base: chipBase(t, c)}
	write(t, filepath.Join(tracefs, "tracing_on"), "0")
	write(t, filepath.Join(tracefs, "buffer_size_kb"), "8192")
	write(t, filepath.Join(tracefs, "trace"), "") // clears the buffer
	// Input reads are "get" events: thousands, and not what is checked.
	write(t, filepath.Join(tracefs, "events/gpio/gpio_value/filter"), "get == 0")
	write(t, filepath.Join(tracefs, "events/gpio/gpio_value/enable"), "1")
	write(t, filepath.Join(tracefs, "events/gpio/gpio_direction/enable"), "1")
	write(t, filepath.Join(tracefs, "tracing_on"), "1")
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(tracefs, "tracing_on"), []byte("0"), 0)
		_ = os.WriteFile(filepath.Join(tracefs, "events/gpio/enable"), []byte("0"), 0)
	})
	return tr
}

// chipBase finds the chip's global GPIO base under /sys/class/gpio.
func chipBase(t *testing.T, c *simChip) int {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/class/gpio/gpiochip*")
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "label")); err == nil && strings.TrimSpace(string(b)) == "doorbridge-vm" {
			n, err := strconv.Atoi(read(t, filepath.Join(d, "base")))
			must(t, err)
			return n
		}
	}
	t.Fatalf("no /sys/class/gpio/gpiochip* labelled doorbridge-vm (have %v): cannot map trace events to lines", dirs)
	return 0
}

var (
	traceLine    = regexp.MustCompile(`gpio_(value|direction): (\d+)\s+(set|out|in) ?(\S*)`)
	traceEntries = regexp.MustCompile(`entries-in-buffer/entries-written: (\d+)/(\d+)`)
)

// stop ends the trace and returns the chip's events in order. Events lost
// to a full buffer fail the test.
func (tr *gpioTrace) stop() []traceEvent {
	tr.t.Helper()
	write(tr.t, filepath.Join(tracefs, "tracing_on"), "0")
	b, err := os.ReadFile(filepath.Join(tracefs, "trace"))
	must(tr.t, err)
	out := string(b)
	if m := traceEntries.FindStringSubmatch(out); m == nil || m[1] != m[2] {
		tr.t.Fatalf("trace buffer lost events (or no header): %v", m)
	}
	var evs []traceEvent
	for _, l := range strings.Split(out, "\n") {
		m := traceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		gpio, _ := strconv.Atoi(m[2])
		ev := traceEvent{line: gpio - tr.base, kind: m[3]}
		if m[1] == "value" {
			ev.value, _ = strconv.Atoi(m[4])
		}
		if ev.line >= 0 && ev.line < numLines {
			evs = append(evs, ev)
		}
	}
	return evs
}

func (e traceEvent) String() string {
	if e.kind == "set" {
		return fmt.Sprintf("GPIO%d set %d", e.line, e.value)
	}
	return fmt.Sprintf("GPIO%d %s", e.line, e.kind)
}
