package gpio

import (
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
		"pin37":  `pin 37 is GPIO26: channel "GPIO26"`,
		"Pin 11": `pin 11 is GPIO17`,
		"pin6":   `pin 6 is power or ground`,
		"pin41":  `has pins 1-40`,
		"BCM17":  `names BCM 17 "GPIO17"`,
		"gpio17": `names BCM 17 "GPIO17"`,
		"-1":     `a line offset is 0 or more`,
		" GPIO4": `spaces around the name`,
	} {
		err := (Options{}).CheckChannel(ch, false)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), validForms) {
			t.Errorf("CheckChannel(%q) = %v, want an error holding %q and the valid forms", ch, err, want)
		}
	}
}

func TestPiDefaultPull(t *testing.T) {
	for ch, want := range map[string][2]bool{
		"GPIO0": {true, true}, "GPIO8": {true, true}, "GPIO9": {false, true},
		"GPIO26": {false, true}, "GPIO28": {false, false}, "26": {false, false}, "PA7": {false, false},
	} {
		up, ok := PiDefaultPull(ch)
		if up != want[0] || ok != want[1] {
			t.Errorf("PiDefaultPull(%q) = %v, %v; want %v, %v", ch, up, ok, want[0], want[1])
		}
	}
}
