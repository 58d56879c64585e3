package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers/gpio"
)

// gpioConfig is a bridge with a maglock and a strike on GPIO relays.
func gpioConfig(t *testing.T, frontPin string, frontLow bool, extra string) string {
	t.Helper()
	al := "false"
	if frontLow {
		al = "true"
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	yaml := `bridge: {id: lab}
drivers:
  - {id: hat, type: gpio}
` + extra + `doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: hat, channel: ` + frontPin + `, active_low: ` + al + `}}
  - {id: store, fail_mode: fail_secure, relay: {driver: hat, channel: GPIO20}}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withSysfs points sysRoot at a directory holding one pinctrl parameter
// (none if param is "") and a device tree compatible list (none if "").
func withSysfs(t *testing.T, param, value, compatible string) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{}
	if param != "" {
		files[filepath.Join("module", "pinctrl_bcm2835", "parameters", param)] = value + "\n"
	}
	if compatible != "" {
		files[filepath.Join("firmware", "devicetree", "base", "compatible")] = compatible
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := sysRoot
	sysRoot = root
	t.Cleanup(func() { sysRoot = old })
}

const (
	pi4 = "raspberrypi,4-model-b\x00brcm,bcm2711\x00"
	pi5 = "raspberrypi,5-model-b\x00brcm,bcm2712\x00"
)

func checkConfig(t *testing.T, path string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cmdCheckConfig([]string{"-c", path, "--skip-hardware"}, &out, &errb); code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, out.String(), errb.String())
	}
	return out.String()
}

func TestCheckConfigPersistentGPIOOutputs(t *testing.T) {
	withSysfs(t, "persist_gpio_outputs", "Y", pi4)
	out := checkConfig(t, gpioConfig(t, "GPIO26", false, ""))
	for _, want := range []string{
		`warning: door "front": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill leaves the maglock powered (the door locked) until doorbridge restarts; set dtparam=strict_gpiod in config.txt (or pinctrl_bcm2835.persist_gpio_outputs=n on the kernel command line) so a released line falls to its pull, or use the hardware watchdog (watchdog.device)`,
		`warning: door "store": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill while the door is unlocked leaves the strike powered (the door unlocked) until doorbridge restarts;`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks\n%s\nit is:\n%s", want, out)
		}
	}
}

func TestCheckConfigStrictGPIOOutputs(t *testing.T) {
	withSysfs(t, "persist_gpio_outputs", "N", pi4)
	if out := checkConfig(t, gpioConfig(t, "GPIO26", false, "")); strings.Contains(out, "warning: door") {
		t.Errorf("released lines fall to their pull, pins pulled to the off level: want no warning, got:\n%s", out)
	}
}

// TestCheckConfigUnknownGPIOPersistence: a kernel that does not say
// whether it keeps released outputs gets the warning that it may, with what
// to do; never the silence of "falls to its pull".
func TestCheckConfigUnknownGPIOPersistence(t *testing.T) {
	withSysfs(t, "", "", pi4)
	out := checkConfig(t, gpioConfig(t, "GPIO26", false, ""))
	for _, want := range []string{
		`warning: door "front": this kernel does not say whether a released GPIO output keeps its level (no persist_gpio_outputs or strict_gpiod parameter under /sys/module/pinctrl*); older Raspberry Pi kernels and a Pi 5 without gpio-ranges keep it: a crash or kill may leave the maglock powered (the door locked) until doorbridge restarts; on a Raspberry Pi set dtparam=strict_gpiod in config.txt`,
		`or use the hardware watchdog (watchdog.device), and check after a kill (kill -9) that the relay goes off`,
		`warning: door "store": this kernel does not say whether a released GPIO output keeps its level`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks\n%s\nit is:\n%s", want, out)
		}
	}
}

func TestCheckConfigPullTurnsRelayOn(t *testing.T) {
	for _, tc := range []struct {
		board     string
		pin       string
		activeLow bool
		extra     string
		want      string
	}{
		{pi4, "GPIO26", false, "", ""},
		{pi4, "GPIO4", true, "", ""},
		{pi4, "GPIO26", true, "", `warning: door "front": relay GPIO26: a Raspberry Pi 1-4 pulls GPIO26 down at power-up, which switches an active-low relay board ON whenever nothing drives the pin (while the Pi boots, and whenever doorbridge is not running: after a crash, and after a clean stop too (it writes the relay off, then the kernel releases the line to its pull); the maglock is powered: the door LOCKED); use a pin the board pulls up (GPIO0-8 on a Raspberry Pi 1-4) or fit a resistor pulling it to the relay's off level`},
		{pi4, "GPIO4", false, "", `warning: door "front": relay GPIO4: a Raspberry Pi 1-4 pulls GPIO4 up at power-up, which switches an active-high relay board ON whenever nothing drives the pin`},
		// Offsets on the main chip are the same pins.
		{pi4, `"26"`, true, "", `warning: door "front": relay 26: a Raspberry Pi 1-4 pulls GPIO26 down at power-up, which switches an active-low relay board ON`},
		{pi4, `"4"`, false, "", `warning: door "front": relay 4: a Raspberry Pi 1-4 pulls GPIO4 up at power-up`},
		{pi4, `"26"`, false, "", ""},
		// A Pi 5's RP1: its power-up pulls are unverified, so both ways.
		{pi5, "GPIO26", false, "", `warning: door "front": relay GPIO26: on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO26 (RP1; check with pinctrl get 26 while it boots), which switches an active-high relay board ON`},
		{pi5, "GPIO26", true, "", `warning: door "front": relay GPIO26: on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO26 (RP1; check with pinctrl get 26 while it boots), which switches an active-low relay board ON`},
		{pi5, "GPIO4", true, "", `warning: door "front": relay GPIO4: on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO4 (RP1; check with pinctrl get 4 while it boots), which switches an active-low relay board ON`},
		// Away from the bridge: every board's table.
		{"", "GPIO4", true, "", `warning: door "front": relay GPIO4: on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO4`},
		{"", "GPIO26", true, "", `relay GPIO26: a Raspberry Pi 1-4 pulls GPIO26 down at power-up; on a Raspberry Pi 5 doorbridge knows no verified power-up pull of GPIO26 (RP1; check with pinctrl get 26 while it boots), which switches an active-low relay board ON`},
	} {
		withSysfs(t, "persist_gpio_outputs", "N", tc.board)
		out := checkConfig(t, gpioConfig(t, tc.pin, tc.activeLow, tc.extra))
		got := strings.Contains(out, `warning: door "front"`)
		if tc.want == "" && got || tc.want != "" && !strings.Contains(out, tc.want) {
			t.Errorf("%q %s active_low %v: want warning %q, got:\n%s", tc.board, tc.pin, tc.activeLow, tc.want, out)
		}
	}
}

func TestCheckConfigHardwareAwayFromTheBridge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	yaml := `bridge: {id: lab}
drivers:
  - {id: board, type: modbus, url: "rtu:///dev/doorbridge-no-such-tty"}
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: board, channel: "0"}}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cmdCheckConfig([]string{"-c", p}, &out, &errb); code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, out.String(), errb.String())
	}
	want := `note: driver "board" not checked: modbus: rtu:///dev/doorbridge-no-such-tty: serial device: stat /dev/doorbridge-no-such-tty: no such file or directory (not on this machine)`
	if !strings.Contains(out.String(), want) {
		t.Errorf("check-config output lacks %q:\n%s", want, out.String())
	}
}

// TestCheckConfigMissingSerialOnTarget: on the bridge's machine (here a
// Raspberry Pi by its device tree) a missing RTU device is an error naming
// the device, not a note.
func TestCheckConfigMissingSerialOnTarget(t *testing.T) {
	withSysfs(t, "persist_gpio_outputs", "N", pi4)
	p := filepath.Join(t.TempDir(), "config.yaml")
	yaml := `bridge: {id: lab}
drivers:
  - {id: board, type: modbus, url: "rtu:///dev/doorbridge-no-such-tty"}
doors:
  - {id: front, fail_mode: fail_safe, relay: {driver: board, channel: "0"}}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := cmdCheckConfig([]string{"-c", p}, &out, &errb)
	want := `driver "board": modbus: rtu:///dev/doorbridge-no-such-tty: serial device: stat /dev/doorbridge-no-such-tty: no such file or directory (not on this machine); this machine is the bridge's (a Raspberry Pi, by its device tree): connect the device or fix the driver's options`
	if code == 0 || !strings.Contains(errb.String(), want) {
		t.Errorf("check-config: exit %d, want an error holding\n%s\ngot:\n%s%s", code, want, out.String(), errb.String())
	}
}

func TestWhenBridgeDies(t *testing.T) {
	cfg := &config.Config{Drivers: []config.Driver{
		{ID: "hat", Type: "gpio", Options: map[string]any{}},
		{ID: "x", Type: "mcp23017", Options: map[string]any{"bus": "1"}},
		{ID: "sim", Type: "sim", Options: map[string]any{}},
	}}
	withSysfs(t, "", "", pi4)
	keeps := gpio.Released{Known: true, KeepsLevel: true, Source: "P = Y"}
	falls := gpio.Released{Known: true, Source: "P = N"}
	unknown := gpio.Released{Source: "no parameter"}
	for _, tc := range []struct {
		relay config.Line
		rel   gpio.Released
		want  string
	}{
		{config.Line{Driver: "hat", Channel: "GPIO26"}, falls, "the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes off"},
		{config.Line{Driver: "hat", Channel: "GPIO26", ActiveLow: true}, falls, "the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes ON (check-config warns)"},
		{config.Line{Driver: "hat", Channel: "GPIO26"}, keeps, "this kernel keeps the line as it was (P = Y): the relay stays as it was until doorbridge restarts"},
		{config.Line{Driver: "hat", Channel: "PA7"}, falls, "the line falls to its pull: with doorbridge stopped now, check that the relay is off"},
		{config.Line{Driver: "hat", Channel: "GPIO26"}, unknown, "this kernel does not say whether it keeps a released line (no parameter): the relay may stay as it was until doorbridge restarts; if not, the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes off"},
		{config.Line{Driver: "x", Channel: "A0"}, gpio.Released{}, "the mcp23017 board keeps the relay as it was, until a hardware watchdog or the board's own timeout switches it off"},
		{config.Line{Driver: "sim", Channel: "0"}, gpio.Released{}, "the relay goes off"},
	} {
		d := &config.Door{ID: "front", Relay: tc.relay}
		if got := whenBridgeDies(cfg, d, tc.rel); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.relay, got, tc.want)
		}
	}
}

// TestWhenBridgeStops: a clean stop writes the relay off, but where the
// pull decides it does not stay off: an active-low relay on a pulled-down
// pin switches ON once doorbridge lets go of the line.
func TestWhenBridgeStops(t *testing.T) {
	withSysfs(t, "", "", pi4)
	cfg := &config.Config{Drivers: []config.Driver{
		{ID: "hat", Type: "gpio", Options: map[string]any{}},
		{ID: "x", Type: "mcp23017", Options: map[string]any{"bus": "1"}},
	}}
	keeps := gpio.Released{Known: true, KeepsLevel: true, Source: "P = Y"}
	falls := gpio.Released{Known: true, Source: "P = N"}
	for _, tc := range []struct {
		relay config.Line
		rel   gpio.Released
		want  string
	}{
		{config.Line{Driver: "hat", Channel: "GPIO26", ActiveLow: true}, falls, "doorbridge writes the relay off, then releases the line: the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes ON (check-config warns)"},
		{config.Line{Driver: "hat", Channel: "GPIO26"}, falls, "doorbridge writes the relay off, then releases the line: the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes off"},
		{config.Line{Driver: "hat", Channel: "GPIO26", ActiveLow: true}, keeps, "doorbridge writes the relay off, then this kernel keeps the line off (P = Y)"},
		{config.Line{Driver: "hat", Channel: "GPIO26", ActiveLow: true}, gpio.Released{}, "doorbridge writes the relay off, then releases the line: if this kernel keeps it, off; if not, the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down at power-up): the relay goes ON (check-config warns)"},
		{config.Line{Driver: "x", Channel: "A0"}, falls, "doorbridge writes the relay off first: it stays off"},
	} {
		d := &config.Door{ID: "front", Relay: tc.relay}
		if got := whenBridgeStops(cfg, d, tc.rel); got != tc.want {
			t.Errorf("%+v %+v: %q, want %q", tc.relay, tc.rel, got, tc.want)
		}
	}
}

// TestCheckConfigPersistAdviceWherePullTurnsRelayOn: an active-low relay on
// a pin pulled down: strict_gpiod or a watchdog reset hands the line to its
// pull, which switches the relay ON. The persistence warning must say to fit
// a resistor first, and the pull warning must count every stop once
// strict_gpiod is set.
func TestCheckConfigPersistAdviceWherePullTurnsRelayOn(t *testing.T) {
	withSysfs(t, "persist_gpio_outputs", "Y", pi4)
	out := checkConfig(t, gpioConfig(t, "GPIO26", true, ""))
	for _, want := range []string{
		`warning: door "front": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill leaves the maglock powered (the door locked) until doorbridge restarts; fit a resistor to the off level first (a Raspberry Pi 1-4 pulls GPIO26 down at power-up); with strict_gpiod (or after a watchdog reset) this relay turns ON whenever doorbridge is not running; then set dtparam=strict_gpiod`,
		`warning: door "front": relay GPIO26: a Raspberry Pi 1-4 pulls GPIO26 down at power-up, which switches an active-low relay board ON whenever nothing drives the pin (while the Pi boots, and after a watchdog reset, and after every stop once strict_gpiod is set;`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks\n%s\nit is:\n%s", want, out)
		}
	}
	// The store door's relay (GPIO20, active-high, pulled down) is held off
	// by its pull: the usual advice stands.
	if strings.Contains(out, `door "store": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill while the door is unlocked leaves the strike powered (the door unlocked) until doorbridge restarts; fit a resistor`) {
		t.Errorf("store's pull holds its relay off: no resistor advice wanted:\n%s", out)
	}
}

// TestCheckConfigPersistAdviceNamesTheBoardsParameter: the kernel command
// line parameter in the advice is the board's pinctrl driver's.
func TestCheckConfigPersistAdviceNamesTheBoardsParameter(t *testing.T) {
	for board, want := range map[string]string{
		pi4: "(or pinctrl_bcm2835.persist_gpio_outputs=n on the kernel command line)",
		pi5: "(or pinctrl_rp1.persist_gpio_outputs=n on the kernel command line)",
		"":  "(or pinctrl_bcm2835.persist_gpio_outputs=n, pinctrl_rp1.persist_gpio_outputs=n on a Pi 5 on the kernel command line)",
	} {
		withSysfs(t, "", "", board)
		if out := checkConfig(t, gpioConfig(t, "GPIO21", false, "")); !strings.Contains(out, want) {
			t.Errorf("board %q: check-config output lacks %q:\n%s", board, want, out)
		}
	}
}
