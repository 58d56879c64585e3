package gpio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckChannel(t *testing.T) {
	for _, ok := range []string{"GPIO26", "26", "0", "ID_SDA", "PA7", "GPIO3_A4"} {
		if err := (Options{}).CheckChannel(ok, true); err != nil {
			t.Errorf("CheckChannel(%q) = %v, want nil", ok, err)
		}
	}
	for ch, want := range map[string]string{
		"pin37":   `pin 37 is GPIO26: channel "GPIO26"`,
		"Pin 11":  `pin 11 is GPIO17`,
		"pin6":    `pin 6 is power or ground`,
		"pin41":   `has pins 1-40`,
		"BCM17":   `names BCM 17 "GPIO17"`,
		"gpio17":  `names BCM 17 "GPIO17"`,
		"GPIO017": `names BCM 17 "GPIO17"`,
		"-1":      `a line offset is 0 or more`,
		" GPIO4":  `spaces around the name`,
	} {
		err := (Options{}).CheckChannel(ch, false)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), validForms) {
			t.Errorf("CheckChannel(%q) = %v, want an error holding %q and the valid forms", ch, err, want)
		}
	}
}

func TestPowerUpPull(t *testing.T) {
	for _, tc := range []struct {
		board    Board
		n        int
		up, down bool
		ok       bool
	}{
		{BoardPi14, 0, true, false, true}, {BoardPi14, 8, true, false, true},
		{BoardPi14, 9, false, true, true}, {BoardPi14, 26, false, true, true},
		{BoardPi14, 28, false, false, false},
		// The RP1's power-up pulls are unverified: both, every pin.
		{BoardPi5, 4, true, true, true}, {BoardPi5, 9, true, true, true}, {BoardPi5, 27, true, true, true},
		{BoardUnknown, 4, false, false, false},
	} {
		p, ok := PowerUpPull(tc.board, tc.n)
		if p.Up != tc.up || p.Down != tc.down || ok != tc.ok {
			t.Errorf("PowerUpPull(%v, %d) = %+v, %v; want up %v down %v, %v", tc.board, tc.n, p, ok, tc.up, tc.down, tc.ok)
		}
	}
}

func TestMainChipLine(t *testing.T) {
	for _, tc := range []struct {
		chip, channel string
		n             int
		ok            bool
	}{
		{"", "GPIO26", 26, true}, {"gpiochip3", "GPIO26", 26, true},
		{"", "26", 26, true}, {"0", "17", 17, true}, {"gpiochip0", "4", 4, true},
		{"/dev/gpiochip0", "4", 4, true}, {"pinctrl-rp1", "4", 4, true},
		{"gpiochip1", "4", 0, false}, {"", "GPIO28", 0, false}, {"", "GPIO017", 0, false},
		{"", "PA7", 0, false}, {"", "-1", 0, false},
	} {
		n, ok := MainChipLine(tc.chip, tc.channel)
		if n != tc.n || ok != tc.ok {
			t.Errorf("MainChipLine(%q, %q) = %d, %v; want %d, %v", tc.chip, tc.channel, n, ok, tc.n, tc.ok)
		}
	}
}

func TestDetectBoard(t *testing.T) {
	for compat, want := range map[string]Board{
		"raspberrypi,5-model-b\x00brcm,bcm2712\x00": BoardPi5,
		"raspberrypi,4-model-b\x00brcm,bcm2711\x00": BoardPi14,
		"qemu,virt\x00": BoardUnknown,
	} {
		root := t.TempDir()
		dir := filepath.Join(root, "firmware", "devicetree", "base")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "compatible"), []byte(compat), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := DetectBoard(root); got != want {
			t.Errorf("DetectBoard(%q) = %v, want %v", compat, got, want)
		}
	}
	if got := DetectBoard(t.TempDir()); got != BoardUnknown {
		t.Errorf("no device tree: %v, want BoardUnknown", got)
	}
}
