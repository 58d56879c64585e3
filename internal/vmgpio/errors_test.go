package vmgpio

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// holdLine requests line offset of chip as an input under consumer, as
// another process would, until the test ends.
func holdLine(t *testing.T, chip string, offset uint32, consumer string) {
	t.Helper()
	f, err := os.OpenFile("/dev/"+chip, os.O_RDWR, 0)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = offset
	req.Num_lines = 1
	req.Config.Flags = 1 << 2 // GPIO_V2_LINE_FLAG_INPUT
	copy(req.Consumer[:], consumer)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.GPIO_V2_GET_LINE_IOCTL, uintptr(unsafe.Pointer(&req))); e != 0 {
		t.Fatalf("request line %d: %v", offset, e)
	}
	t.Cleanup(func() { unix.Close(int(req.Fd)) })
}

// TestStartErrors: what a user sees when the line is taken, the chip is
// missing or the line name is wrong. The bridge keeps the other doors
// running (the failed one JAMMED), so the message must name the cause, and
// the other relays must stay off: the relay pins are pulled to their ON
// level, so an off reading is the bridge driving them off, and the kernel's
// gpio trace shows no relay driven on at any moment.
func TestStartErrors(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	good := bridgeConfig(c.name)
	for _, tc := range []struct {
		name, from, to string
		hold           bool
		failed         int // the relay line that cannot be had; -1: none can
		want           []string
	}{
		{"line held by another process", "", "", true, relayFront,
			[]string{`"GPIO0" (offset 0) on ` + c.name, `held by "other-daemon", another process or driver (gpioinfo lists who holds which line): busy`}},
		{"missing chip", "chip: " + c.name, "chip: gpiochip9", false, -1,
			[]string{`chip "gpiochip9": not found (have ` + c.name + ` "doorbridge-vm"`}},
		{"wrong line name", "channel: GPIO2,", "channel: GPIO99,", false, relayStore,
			[]string{`channel "GPIO99": no line of that name on ` + c.name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setPulls(c, true)
			cfg := strings.Replace(good, tc.from, tc.to, 1)
			if tc.hold {
				holdLine(t, c.name, relayFront, "other-daemon")
			}
			tr := startTrace(t, c)
			br := startBridge(t, "run", "-c", writeConfig(t, cfg))
			br.waitOutput(60*time.Second, tc.want...)
			t.Logf("doorbridge says: %s", grepLine(br.out.String(), tc.want[len(tc.want)-1]))
			checkOthersOff(t, c, tr, tc.failed)
		})
	}
}

// checkOthersOff: with one relay failed (or all, failed -1), every other
// relay is requested by the bridge at its off level and reads off, and the
// trace shows no relay line driven on.
func checkOthersOff(t *testing.T, c *simChip, tr *gpioTrace, failed int) {
	t.Helper()
	li := openLineInfo(t, c.name)
	var others []string
	for _, rl := range relays {
		if failed < 0 || rl.line == failed {
			continue
		}
		testbroker.Eventually(t, 30*time.Second, func() bool {
			out, consumer, err := li.output(rl.line)
			must(t, err)
			return out && consumer == "doorbridge/hat"
		}, "GPIO%d (%s) requested as an output by doorbridge/hat", rl.line, rl.door)
		if got := c.value(rl.line); got != off(rl.activeLow) {
			t.Fatalf("GPIO%d (%s, active_low %v) reads %v, want its off level %v (its pull is its ON level)", rl.line, rl.door, rl.activeLow, got, off(rl.activeLow))
		}
		others = append(others, rl.door)
	}
	evs := tr.stop()
	if failed < 0 {
		for _, ev := range evs {
			if ev.kind == "set" {
				t.Fatalf("no chip, yet a relay line was driven: %v", ev)
			}
		}
		for _, rl := range relays {
			info, err := li.info(rl.line)
			must(t, err)
			if info.Flags&lineUsed != 0 {
				t.Fatalf("no chip for the bridge, yet GPIO%d is requested (flags %#x)", rl.line, info.Flags)
			}
		}
		t.Logf("no relay line requested or driven")
		return
	}
	n := checkRelaysOff(t, evs, failed)
	t.Logf("the other relays (%s) requested and off; kernel gpio trace: %d level events, none on", strings.Join(others, ", "), n)
}

// TestCheckConfigOnTarget: check-config on the machine finds the same
// mistakes without starting the bridge.
func TestCheckConfigOnTarget(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	good := bridgeConfig(c.name)
	if code, out := run(t, "check-config", "-c", writeConfig(t, good)); code != 0 {
		t.Fatalf("check-config of the good config: exit %d\n%s", code, out)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"chip: " + c.name, "chip: gpiochip9", `chip "gpiochip9": not found`},
		{"channel: GPIO2,", "channel: GPIO99,", `channel "GPIO99": no line of that name on ` + c.name},
	} {
		code, out := run(t, "check-config", "-c", writeConfig(t, strings.Replace(good, tc.from, tc.to, 1)))
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("check-config with %s: exit %d, want an error holding %q; got:\n%s", tc.to, code, tc.want, out)
		}
		t.Logf("check-config with %s: %s", tc.to, grepLine(out, tc.want))
	}
}

func grepLine(out, want string) string {
	for _, l := range strings.Split(strings.ReplaceAll(out, `\"`, `"`), "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	return fmt.Sprintf("(no line holds %q)", want)
}

// TestCheckConfigI2COnTarget: check-config finds the I2C bus an mcp23017
// driver names (i2c-stub's adapter), and names a missing one.
func TestCheckConfigI2COnTarget(t *testing.T) {
	needVM(t)
	cfg := func(bus string) string {
		return writeConfig(t, fmt.Sprintf(`bridge: {id: vm}
mqtt: {url: ""}
drivers:
  - {id: hat, type: mcp23017, bus: %q}
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: hat, channel: A0, active_low: true}}
`, bus))
	}
	if code, out := run(t, "check-config", "-c", cfg("/dev/i2c-0")); code != 0 || strings.Contains(out, "not checked") {
		t.Fatalf("check-config with the stub's bus: exit %d, want 0 and the bus checked:\n%s", code, out)
	}
	code, out := run(t, "check-config", "-c", cfg("/dev/i2c-5"))
	want := `driver "hat": mcp23017: bus "/dev/i2c-5": i2creg: can't open unknown bus: "/dev/i2c-5" (have /dev/i2c-0)`
	if code == 0 || !strings.Contains(out, want) {
		t.Fatalf("check-config with a missing bus: exit %d, want an error holding %q:\n%s", code, want, out)
	}
	t.Logf("check-config with a missing bus: %s", grepLine(out, want))
}
