package gpio

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Released says what the kernel does with an output line the process
// releases (on exit, crash or Close), as far as the running kernel says.
type Released struct {
	// Known is true when a pinctrl module parameter says it and every such
	// parameter could be read.
	Known bool
	// KeepsLevel is true when a released output keeps driving its last level
	// (Raspberry Pi kernels by default); false when it returns to an input and
	// the pin's pull decides (upstream pinctrl drivers, dtparam=strict_gpiod).
	KeepsLevel bool
	// Source names the parameter and its value, or why nothing is known, for
	// messages.
	Source string
}

// MayKeep reports whether a released output may go on driving its last
// level: the kernel says it does, or it does not say. Not knowing is not
// "falls to its pull": older Raspberry Pi kernels keep outputs without any
// parameter, and a Pi 5 whose pinctrl-rp1 lacks gpio-ranges keeps them
// whatever persist_gpio_outputs says.
func (r Released) MayKeep() bool { return !r.Known || r.KeepsLevel }

// ReleasedOutputs reads the pinctrl module parameters under sysRoot ("/sys"
// on a real system; tests pass a directory of their own).
//
// Raspberry Pi kernels keep released outputs driven unless told otherwise:
// since raspberrypi/linux PR 6150 through the upstream parameter
// persist_gpio_outputs (pinctrl_bcm2835, pinctrl_rp1 on a Pi 5), which is Y
// by default there and N with dtparam=strict_gpiod; before it (PR 6117)
// through strict_gpiod itself (N by default). Upstream kernels default to N.
// No parameter at all, or one that cannot be read: unknown (Known false),
// which callers treat as "may keep" (MayKeep).
//
// On a Raspberry Pi 5 (by its device tree) the header's GPIO is the RP1's:
// only pinctrl_rp1's parameter counts, and without it nothing is known (a
// pinctrl_bcm2835 parameter there is about other pins).
func ReleasedOutputs(sysRoot string) Released {
	pattern := filepath.Join(sysRoot, "module", "pinctrl*", "parameters", "*")
	none := "no persist_gpio_outputs or strict_gpiod parameter under /sys/module/pinctrl*"
	if DetectBoard(sysRoot) == BoardPi5 {
		pattern = filepath.Join(sysRoot, "module", "pinctrl_rp1", "parameters", "*")
		none = "no persist_gpio_outputs parameter under /sys/module/pinctrl_rp1 (a Raspberry Pi 5's GPIO is the RP1's; other pinctrl drivers' parameters do not apply)"
	}
	params, _ := filepath.Glob(pattern)
	sort.Strings(params)
	var said, unreadable []string
	keeps := ""
	for _, p := range params {
		name := filepath.Base(p)
		if name != "persist_gpio_outputs" && name != "strict_gpiod" {
			continue
		}
		src := "/sys" + strings.TrimPrefix(p, filepath.Clean(sysRoot))
		b, err := os.ReadFile(p)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("cannot read %s: %v", src, err))
			continue
		}
		v := strings.TrimSpace(string(b))
		on := v == "Y" || v == "1"
		said = append(said, src+" = "+v)
		if on == (name == "persist_gpio_outputs") && keeps == "" {
			// Several pinctrl drivers: the one that keeps levels wins.
			keeps = src + " = " + v
		}
	}
	switch {
	case keeps != "":
		return Released{Known: true, KeepsLevel: true, Source: keeps}
	case len(unreadable) > 0:
		return Released{Source: strings.Join(unreadable, "; ")}
	case len(said) == 0:
		return Released{Source: none}
	}
	return Released{Known: true, Source: strings.Join(said, ", ")}
}
