package vmgpio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// inVM reports whether the test runs in the VM of scripts/vm-gpio.sh.
func inVM() bool { return os.Getenv("DOORBRIDGE_VMGPIO") == "1" }

func needVM(t *testing.T) {
	t.Helper()
	if !inVM() {
		t.Skip("runs inside the VM of scripts/vm-gpio.sh (DOORBRIDGE_VMGPIO=1); run that script")
	}
}

const configfs = "/sys/kernel/config/gpio-sim"

// simChip is one live gpio-sim chip (configfs) and its sysfs lines.
type simChip struct {
	t     *testing.T
	cfg   string // configfs directory
	sysfs string // /sys/devices/platform/<dev>/<chip>
	name  string // gpiochipN
	lines int
}

// newSimChip creates a gpio-sim chip with n lines named GPIO0..GPIO(n-1)
// and removes it when the test ends.
func newSimChip(t *testing.T, n int) *simChip {
	t.Helper()
	c := &simChip{t: t, cfg: filepath.Join(configfs, "vm"), lines: n}
	bank := filepath.Join(c.cfg, "bank0")
	must(t, os.Mkdir(c.cfg, 0o755))
	must(t, os.Mkdir(bank, 0o755))
	write(t, filepath.Join(bank, "num_lines"), fmt.Sprint(n))
	write(t, filepath.Join(bank, "label"), "doorbridge-vm")
	for i := 0; i < n; i++ {
		l := filepath.Join(bank, fmt.Sprintf("line%d", i))
		must(t, os.Mkdir(l, 0o755))
		write(t, filepath.Join(l, "name"), fmt.Sprintf("GPIO%d", i))
	}
	write(t, filepath.Join(c.cfg, "live"), "1")
	t.Cleanup(c.remove)
	c.name = read(t, filepath.Join(bank, "chip_name"))
	c.sysfs = filepath.Join("/sys/devices/platform", read(t, filepath.Join(c.cfg, "dev_name")), c.name)
	if _, err := os.Stat("/dev/" + c.name); err != nil {
		t.Fatalf("gpio-sim chip is live but /dev/%s: %v", c.name, err)
	}
	return c
}

func (c *simChip) remove() {
	_ = os.WriteFile(filepath.Join(c.cfg, "live"), []byte("0"), 0)
	for i := 0; i < c.lines; i++ {
		_ = os.Remove(filepath.Join(c.cfg, "bank0", fmt.Sprintf("line%d", i)))
	}
	_ = os.Remove(filepath.Join(c.cfg, "bank0"))
	_ = os.Remove(c.cfg)
}

// value reads line n as gpio-sim sees it: the level driven by an output,
// or the pull of a line nobody drives.
func (c *simChip) value(n int) bool {
	c.t.Helper()
	return read(c.t, filepath.Join(c.sysfs, fmt.Sprintf("sim_gpio%d", n), "value")) == "1"
}

// pull sets line n's pull: what an input reads, what a released line
// falls back to.
func (c *simChip) pull(n int, up bool) {
	c.t.Helper()
	p := "pull-down"
	if up {
		p = "pull-up"
	}
	write(c.t, filepath.Join(c.sysfs, fmt.Sprintf("sim_gpio%d", n), "pull"), p)
}

// waitValue waits until line n reads want.
func (c *simChip) waitValue(n int, want bool, timeout time.Duration, why string) {
	c.t.Helper()
	testbroker.Eventually(c.t, timeout, func() bool { return c.value(n) == want }, "GPIO%d reads %v: %s", n, want, why)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("write %q to %s: %v", v, path, err)
	}
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}
