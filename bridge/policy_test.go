package bridge

import (
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/policy"
)

// policy cannot import config: its fail mode names must still be config's.
func TestFailModeNamesMatchConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode FailMode
	}{{config.FailSafe, FailSafe}, {config.FailSecure, FailSecure}} {
		got, err := ParseFailMode(tt.name)
		if err != nil || got != tt.mode || tt.mode.String() != tt.name {
			t.Errorf("fail mode %q: parsed %v, %v; String() = %q", tt.name, got, err, tt.mode.String())
		}
	}
}

// The battery budget the loop passes is R8's: at most 10 minutes on battery.
func TestBatteryBudgetIsR8(t *testing.T) {
	if config.MaxHoldOnBattery <= 0 || config.MaxHoldOnBattery > policy.MaxBatteryHold {
		t.Fatalf("config.MaxHoldOnBattery = %v, R8 allows (0, %v]", config.MaxHoldOnBattery, policy.MaxBatteryHold)
	}
}
