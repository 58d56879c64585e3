package vmgpio

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
// missing or the line name is wrong. Whether the bridge then exits or keeps
// the other doors running (with this one JAMMED), the message must name the
// cause.
func TestStartErrors(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	good := bridgeConfig(c.name)
	for _, tc := range []struct {
		name, from, to string
		hold           bool
		want           []string
	}{
		{"line held by another process", "", "", true,
			[]string{`"GPIO0" (offset 0) on ` + c.name, `held by "other-daemon", another process or driver (gpioinfo lists who holds which line): busy`}},
		{"missing chip", "chip: " + c.name, "chip: gpiochip9", false,
			[]string{`chip "gpiochip9": not found (have ` + c.name + ` "doorbridge-vm"`}},
		{"wrong line name", "channel: GPIO2,", "channel: GPIO99,", false,
			[]string{`channel "GPIO99": no line of that name on ` + c.name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(good, tc.from, tc.to, 1)
			if tc.hold {
				holdLine(t, c.name, relayFront, "other-daemon")
			}
			br := startBridge(t, "run", "-c", writeConfig(t, cfg))
			br.waitOutput(60*time.Second, tc.want...)
			t.Logf("doorbridge says: %s", grepLine(br.out.String(), tc.want[len(tc.want)-1]))
		})
	}
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
