package gpio

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Released says what the kernel does with an output line the process
// releases (on exit, crash or Close), as far as the running kernel says.
type Released struct {
	// Known is true when a pinctrl module parameter says it.
	Known bool
	// KeepsLevel is true when a released output keeps driving its last level
	// (Raspberry Pi kernels by default); false when it returns to an input and
	// the pin's pull decides (upstream pinctrl drivers, dtparam=strict_gpiod).
	KeepsLevel bool
	// Source names the parameter and its value, for messages.
	Source string
}

// ReleasedOutputs reads the pinctrl module parameters under sysRoot ("/sys"
// on a real system; tests pass a directory of their own).
//
// Raspberry Pi kernels keep released outputs driven unless told otherwise:
// since raspberrypi/linux PR 6150 through the upstream parameter
// persist_gpio_outputs (pinctrl_bcm2835, pinctrl_rp1 on a Pi 5), which is Y
// by default there and N with dtparam=strict_gpiod; before it (PR 6117)
// through strict_gpiod itself (N by default). Upstream kernels default to N.
// No parameter at all: a pinctrl driver that returns released lines to
// inputs, or a kernel that does not say (Known false).
func ReleasedOutputs(sysRoot string) Released {
	params, _ := filepath.Glob(filepath.Join(sysRoot, "module", "pinctrl*", "parameters", "*"))
	sort.Strings(params)
	r := Released{}
	for _, p := range params {
		name := filepath.Base(p)
		if name != "persist_gpio_outputs" && name != "strict_gpiod" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		on := v == "Y" || v == "1"
		keeps := on == (name == "persist_gpio_outputs")
		src := strings.TrimPrefix(p, filepath.Clean(sysRoot)) + " = " + v
		if !r.Known || keeps {
			// Several pinctrl drivers: the one that keeps levels wins.
			r = Released{Known: true, KeepsLevel: keeps, Source: "/sys" + src}
		}
	}
	return r
}
