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

// withSysfs points sysRoot at a directory holding one pinctrl parameter.
func withSysfs(t *testing.T, param, value string) {
	t.Helper()
	root := t.TempDir()
	if param != "" {
		dir := filepath.Join(root, "module", "pinctrl_bcm2835", "parameters")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, param), []byte(value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := sysRoot
	sysRoot = root
	t.Cleanup(func() { sysRoot = old })
}

func checkConfig(t *testing.T, path string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cmdCheckConfig([]string{"-c", path, "--skip-hardware"}, &out, &errb); code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, out.String(), errb.String())
	}
	return out.String()
}

func TestCheckConfigPersistentGPIOOutputs(t *testing.T) {
	withSysfs(t, "persist_gpio_outputs", "Y")
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
	withSysfs(t, "persist_gpio_outputs", "N")
	if out := checkConfig(t, gpioConfig(t, "GPIO26", false, "")); strings.Contains(out, "warning: door") {
		t.Errorf("released lines fall to their pull, pins pulled to the off level: want no warning, got:\n%s", out)
	}
}

func TestCheckConfigPullTurnsRelayOn(t *testing.T) {
	withSysfs(t, "", "")
	for _, tc := range []struct {
		pin       string
		activeLow bool
		want      string
	}{
		{"GPIO26", false, ""},
		{"GPIO4", true, ""},
		{"GPIO26", true, `warning: door "front": relay GPIO26: a Raspberry Pi 1-4 pulls GPIO26 down at power-up, which switches an active-low relay board ON whenever nothing drives the pin (while the Pi boots and after doorbridge stops or crashes; the maglock is powered: the door LOCKED); use a pin from GPIO0-8 (pulled up) or fit a resistor pulling it to the relay's off level`},
		{"GPIO4", false, `warning: door "front": relay GPIO4: a Raspberry Pi 1-4 pulls GPIO4 up at power-up, which switches an active-high relay board ON whenever nothing drives the pin`},
	} {
		out := checkConfig(t, gpioConfig(t, tc.pin, tc.activeLow, ""))
		got := strings.Contains(out, `warning: door "front"`)
		if tc.want == "" && got || tc.want != "" && !strings.Contains(out, tc.want) {
			t.Errorf("%s active_low %v: want warning %q, got:\n%s", tc.pin, tc.activeLow, tc.want, out)
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

func TestWhenBridgeDies(t *testing.T) {
	cfg := &config.Config{Drivers: []config.Driver{
		{ID: "hat", Type: "gpio", Options: map[string]any{}},
		{ID: "x", Type: "mcp23017", Options: map[string]any{"bus": "1"}},
		{ID: "sim", Type: "sim", Options: map[string]any{}},
	}}
	keeps := gpio.Released{Known: true, KeepsLevel: true, Source: "P = Y"}
	for _, tc := range []struct {
		relay config.Line
		rel   gpio.Released
		want  string
	}{
		{config.Line{Driver: "hat", Channel: "GPIO26"}, gpio.Released{}, "the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down): the relay goes off"},
		{config.Line{Driver: "hat", Channel: "GPIO26", ActiveLow: true}, gpio.Released{}, "the line falls to its pull (a Raspberry Pi 1-4 pulls GPIO26 down): the relay goes ON (check-config warns)"},
		{config.Line{Driver: "hat", Channel: "GPIO26"}, keeps, "this kernel keeps the line as it was (P = Y): the relay stays as it was until doorbridge restarts"},
		{config.Line{Driver: "hat", Channel: "PA7"}, gpio.Released{}, "the line falls to its pull: with doorbridge stopped now, check that the relay is off"},
		{config.Line{Driver: "x", Channel: "A0"}, gpio.Released{}, "the mcp23017 board keeps the relay as it was, until a hardware watchdog or the board's own timeout switches it off"},
		{config.Line{Driver: "sim", Channel: "0"}, gpio.Released{}, "the relay goes off"},
	} {
		d := &config.Door{ID: "front", Relay: tc.relay}
		if got := whenBridgeDies(cfg, d, tc.rel); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.relay, got, tc.want)
		}
	}
}
