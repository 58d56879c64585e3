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

// TestPersistentOutputsWarned: on a kernel that keeps released outputs,
// check-config and the start-up log say what a crash does to each door.
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
