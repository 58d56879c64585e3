package discovery_test

import (
	"slices"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// Input entities exist exactly when the input that feeds them is
// configured, on the topics the bridge publishes.
func TestInputEntities(t *testing.T) {
	contactOnly := door("contact", config.FailSecure, "")
	contactOnly.Contact = &config.Line{Driver: "relays", Channel: "c"}
	senseOnly := door("sense", config.FailSafe, "")
	senseOnly.LockSense = &config.Line{Driver: "relays", Channel: "s"}
	rexOnly := door("rex", config.FailSafe, "")
	rexOnly.Rex = &config.Line{Driver: "relays", Channel: "r"}
	cfg := newConfig(t, contactOnly, senseOnly, rexOnly, door("none", config.FailSafe, ""))

	inputKeys := []string{"contact", "forced_open", "held_open", "release_failure"}
	want := map[string]map[string]string{ // door -> component -> state topic
		"contact": {"contact": "doorbridge/home/contact/contact", "forced_open": "doorbridge/home/contact/forced",
			"held_open": "doorbridge/home/contact/held"},
		"sense": {"release_failure": "doorbridge/home/sense/release_failure"},
		"rex":   {},
		"none":  {},
	}
	for id, comps := range want {
		var got map[string]map[string]any
		for _, m := range discovery.Build(cfg, testInfo) {
			if m.Topic == discovery.DoorTopic(cfg, id) {
				got = components(t, m.Payload)
			}
		}
		if got == nil {
			t.Fatalf("no discovery message for door %s", id)
		}
		for _, k := range inputKeys {
			c, has := got[k]
			topic, want := comps[k]
			if has != want {
				t.Errorf("door %s: component %s present %v, want %v", id, k, has, want)
				continue
			}
			if !has {
				continue
			}
			class := "problem"
			if k == "contact" {
				class = "door"
			}
			if c["state_topic"] != topic || c["device_class"] != class || c["payload_on"] != "ON" || c["payload_off"] != "OFF" {
				t.Errorf("door %s: %s = %v", id, k, c)
			}
		}
	}
	if !slices.Contains(mqttapi.EventTypes(), "release_failure") {
		t.Error("event types lack release_failure")
	}
}
