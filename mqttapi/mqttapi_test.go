package mqttapi_test

import (
	"slices"
	"testing"

	"github.com/doorbridge/doorbridge/mqttapi"
	"github.com/doorbridge/doorbridge/policy"
)

// Every cause the policy can decide, hazards included, is a published cause.
func TestCausesCoverPolicy(t *testing.T) {
	causes := mqttapi.Causes()
	want := []string{policy.CauseNormal, policy.CauseLockdown, policy.CauseMomentary, policy.CauseRex}
	for _, h := range policy.AllHazards() {
		want = append(want, h.String())
	}
	for _, c := range want {
		if !slices.Contains(causes, c) {
			t.Errorf("cause %q missing from Causes() %v", c, causes)
		}
	}
	if len(causes) != len(want) {
		t.Errorf("Causes() has %d values, the policy %d: %v", len(causes), len(want), causes)
	}
}

// The reserved leaves are the contract config's messages list; keep them.
func TestBridgeLeaves(t *testing.T) {
	want := []string{"alarm", "availability", "drill", "drill_overdue", "error", "events", "hazards",
		"heartbeat", "lockdown", "notice", "power", "problem", "republish"}
	if got := mqttapi.BridgeLeaves(); !slices.Equal(got, want) {
		t.Fatalf("BridgeLeaves() = %v, want %v", got, want)
	}
	if !mqttapi.IsBridgeLeaf("lockdown") || mqttapi.IsBridgeLeaf("front") {
		t.Fatal("IsBridgeLeaf")
	}
}

// The causes and event types, in the order Home Assistant shows them.
func TestVocabularies(t *testing.T) {
	want := []string{"normal", "lockdown", "alarm", "broker", "power", "startup", "shutdown",
		"watchdog", "driver", "rex", "alarm_supervision", "momentary"}
	if got := mqttapi.Causes(); !slices.Equal(got, want) {
		t.Errorf("Causes() = %v", got)
	}
	wantEv := []string{"unlocked", "locked", "opened", "rejected_code", "released_by_hazard",
		"relocked", "lockout", "forced_open", "held_open", "release_failure"}
	if got := mqttapi.EventTypes(); !slices.Equal(got, wantEv) {
		t.Errorf("EventTypes() = %v", got)
	}
}
