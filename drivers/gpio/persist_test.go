package gpio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sysWith builds a sysfs root holding the given module parameters
// ("pinctrl_bcm2835/persist_gpio_outputs" -> "Y").
func sysWith(t *testing.T, params map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range params {
		mod, name := filepath.Split(k)
		dir := filepath.Join(root, "module", mod, "parameters")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReleasedOutputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   Released
	}{
		{"no pinctrl parameter", map[string]string{"other/persist_gpio_outputs": "Y"},
			Released{Source: "no persist_gpio_outputs or strict_gpiod parameter under /sys/module/pinctrl*"}},
		{"Raspberry Pi OS default", map[string]string{"pinctrl_bcm2835/persist_gpio_outputs": "Y"},
			Released{Known: true, KeepsLevel: true, Source: "/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = Y"}},
		{"dtparam=strict_gpiod", map[string]string{"pinctrl_bcm2835/persist_gpio_outputs": "N"},
			Released{Known: true, Source: "/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs = N"}},
		{"Pi 5: rp1 keeps, bcm2835 does not", map[string]string{"pinctrl_bcm2835/persist_gpio_outputs": "N", "pinctrl_rp1/persist_gpio_outputs": "Y"},
			Released{Known: true, KeepsLevel: true, Source: "/sys/module/pinctrl_rp1/parameters/persist_gpio_outputs = Y"}},
		{"older Pi kernel without strict_gpiod", map[string]string{"pinctrl_bcm2835/strict_gpiod": "N"},
			Released{Known: true, KeepsLevel: true, Source: "/sys/module/pinctrl_bcm2835/parameters/strict_gpiod = N"}},
		{"older Pi kernel with strict_gpiod", map[string]string{"pinctrl_bcm2835/strict_gpiod": "Y"},
			Released{Known: true, Source: "/sys/module/pinctrl_bcm2835/parameters/strict_gpiod = Y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ReleasedOutputs(sysWith(t, tc.params))
			if got != tc.want {
				t.Errorf("ReleasedOutputs = %+v, want %+v", got, tc.want)
			}
			if keeps := tc.want.KeepsLevel || !tc.want.Known; got.MayKeep() != keeps {
				t.Errorf("MayKeep = %v, want %v", got.MayKeep(), keeps)
			}
		})
	}
}

// TestReleasedOutputsUnknown: a kernel that does not say, or a parameter
// that cannot be read, is "may keep its level", never "falls to its pull".
func TestReleasedOutputsUnknown(t *testing.T) {
	empty := t.TempDir()
	if r := ReleasedOutputs(empty); r.Known || !r.MayKeep() {
		t.Errorf("no /sys/module at all: %+v, MayKeep %v; want unknown and may keep", r, r.MayKeep())
	}
	root := sysWith(t, map[string]string{"pinctrl_rp1/persist_gpio_outputs": "N"})
	// A parameter that cannot be read (a directory stands in for a file
	// root may not read).
	if err := os.MkdirAll(filepath.Join(root, "module", "pinctrl_bcm2835", "parameters", "persist_gpio_outputs"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := ReleasedOutputs(root)
	if r.Known || !r.MayKeep() || !strings.Contains(r.Source, "cannot read /sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs") {
		t.Errorf("one parameter N, one unreadable: %+v; want unknown (may keep) naming the unreadable one", r)
	}
}

// TestReleasedOutputsPi5: on a Raspberry Pi 5 only pinctrl_rp1's parameter
// says what the header's GPIO does; pinctrl_bcm2835's alone is unknown, not
// "falls to its pull".
func TestReleasedOutputsPi5(t *testing.T) {
	root := sysWith(t, map[string]string{"pinctrl_bcm2835/persist_gpio_outputs": "N"})
	dt := filepath.Join(root, "firmware", "devicetree", "base")
	if err := os.MkdirAll(dt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dt, "compatible"), []byte("raspberrypi,5-model-b\x00brcm,bcm2712\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ReleasedOutputs(root)
	if r.Known || !strings.Contains(r.Source, "no persist_gpio_outputs parameter under /sys/module/pinctrl_rp1") {
		t.Errorf("Pi 5 with pinctrl_bcm2835 = N only: %+v; want unknown, naming pinctrl_rp1", r)
	}
	root2 := sysWith(t, map[string]string{"pinctrl_bcm2835/persist_gpio_outputs": "N", "pinctrl_rp1/persist_gpio_outputs": "N"})
	if err := os.MkdirAll(filepath.Join(root2, "firmware", "devicetree", "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root2, "firmware", "devicetree", "base", "compatible"), []byte("brcm,bcm2712\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := Released{Known: true, Source: "/sys/module/pinctrl_rp1/parameters/persist_gpio_outputs = N"}
	if r := ReleasedOutputs(root2); r != want {
		t.Errorf("Pi 5 with pinctrl_rp1 = N: %+v, want %+v", r, want)
	}
}
