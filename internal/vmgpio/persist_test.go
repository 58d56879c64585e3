package vmgpio

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakePiKernel hides /sys/module under a tmpfs holding the pinctrl parameter
// of a stock Raspberry Pi OS kernel, until the test ends.
func fakePiKernel(t *testing.T, value string) {
	t.Helper()
	must(t, syscall.Mount("none", "/sys/module", "tmpfs", 0, ""))
	t.Cleanup(func() { _ = syscall.Unmount("/sys/module", 0) })
	dir := "/sys/module/pinctrl_bcm2835/parameters"
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "persist_gpio_outputs"), []byte(value+"\n"), 0o444))
}

// TestPersistentOutputsWarned shows only the message path: the static
// binary reads the parameter under /sys/module (here a tmpfs the test
// writes, as a Raspberry Pi OS kernel would show it), and check-config and
// the start-up log carry the warning. It does not show that a Pi kernel
// keeps its outputs (no Pi kernel runs here; that is the parameter's
// documented meaning, see drivers/gpio persist.go).
func TestPersistentOutputsWarned(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	fakePiKernel(t, "Y")
	path := writeConfig(t, bridgeConfig(c.name))
	want := []string{
		`warning: door "front": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill leaves the maglock powered (the door locked) until doorbridge restarts`,
		`warning: door "store": this kernel keeps released GPIO outputs driven (/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y): a crash or kill while the door is unlocked leaves the strike powered (the door unlocked) until doorbridge restarts`,
	}
	code, out := run(t, "check-config", "-c", path)
	for _, w := range want {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("check-config: exit %d, want a warning\n%s\ngot:\n%s", code, w, out)
		}
	}
	br := startBridge(t, "run", "-c", path)
	br.waitOutput(60*time.Second, `msg="door "front": this kernel keeps released GPIO outputs driven`, `msg="door "store": this kernel keeps released GPIO outputs driven`)
	t.Logf("start-up: %s", grepLine(br.out.String(), `door "front": this kernel keeps`))
}

// TestUnknownPersistenceWarned: Debian's kernel, as it is, has no pinctrl
// persistence parameter. doorbridge cannot tell what it does with a
// released output, so check-config and the start-up log say the level may
// be kept after a crash, and what to do. (gpio-sim on this kernel does
// release lines to their pull, TestSIGKILLFallsBackToPull; the binary
// cannot know that from sysfs.)
func TestUnknownPersistenceWarned(t *testing.T) {
	needVM(t)
	c := newSimChip(t, numLines)
	setPulls(c, false)
	ps, _ := filepath.Glob("/sys/module/pinctrl*/parameters/persist_gpio_outputs")
	ss, _ := filepath.Glob("/sys/module/pinctrl*/parameters/strict_gpiod")
	if ps = append(ps, ss...); len(ps) != 0 {
		t.Fatalf("this kernel has pinctrl parameters %v: the unknown case cannot be shown", ps)
	}
	path := writeConfig(t, bridgeConfig(c.name))
	want := `door "front": this kernel does not say whether a released GPIO output keeps its level (no persist_gpio_outputs or strict_gpiod parameter under /sys/module/pinctrl*); older Raspberry Pi kernels and a Pi 5 without gpio-ranges keep it: a crash or kill may leave the maglock powered (the door locked) until doorbridge restarts; on a Raspberry Pi fit a resistor to the off level first (a Raspberry Pi 1-4 pulls GPIO0 up at power-up;`
	code, out := run(t, "check-config", "-c", path)
	if code != 0 || !strings.Contains(out, "warning: "+want) {
		t.Errorf("check-config: exit %d, want a warning\n%s\ngot:\n%s", code, want, out)
	}
	br := startBridge(t, "run", "-c", path)
	br.waitOutput(60*time.Second, `msg="`+want)
	t.Logf("start-up: %s", grepLine(br.out.String(), `door "front": this kernel does not say`))
}
