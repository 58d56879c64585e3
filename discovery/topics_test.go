package discovery_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/mqttapi"
)

func TestIsOwnTopic(t *testing.T) {
	cfg := newConfig(t, door("front", config.FailSafe, ""))
	cases := map[string]bool{
		"homeassistant/device/doorbridge_home/config":           true,
		"homeassistant/device/doorbridge_home_front/config":     true,
		"homeassistant/device/doorbridge_home_gone-door/config": true, // a deleted door
		"homeassistant/device/doorbridge_home_/config":          false,
		"homeassistant/device/doorbridge_homestead/config":      false,
		"homeassistant/device/doorbridge_office_front/config":   false,
		"homeassistant/device/doorbridge_home_front/x/config":   false,
		"homeassistant/device/doorbridge_home_front":            false,
		"homeassistant/lock/doorbridge_home_front/config":       false,
		"other/device/doorbridge_home_front/config":             false,
		"homeassistant/device/doorbridge_home_a b/config":       false,
	}
	for topic, want := range cases {
		if got := discovery.IsOwnTopic(cfg, topic); got != want {
			t.Errorf("IsOwnTopic(%q) = %v, want %v", topic, got, want)
		}
	}
	for _, m := range discovery.Build(cfg, testInfo) {
		if !discovery.IsOwnTopic(cfg, m.Topic) {
			t.Errorf("IsOwnTopic(%q) = false for a topic Build returns", m.Topic)
		}
	}
}

// TestIsOwnDevice checks the payload test that tells bridge "home"'s doors
// from bridge "home_2"'s, whose topics look alike.
func TestIsOwnDevice(t *testing.T) {
	home := newConfig(t, door("front", config.FailSafe, ""))
	other := newConfig(t, door("front", config.FailSafe, ""))
	other.Bridge.ID = "home_2"
	for _, m := range discovery.Build(home, testInfo) {
		if !discovery.IsOwnDevice(home, m.Topic, m.Payload) {
			t.Errorf("IsOwnDevice(home, %s) = false for its own payload", m.Topic)
		}
	}
	for _, m := range discovery.Build(other, testInfo) {
		if !discovery.IsOwnTopic(home, m.Topic) {
			t.Fatalf("expected %s to look like home's by topic alone", m.Topic)
		}
		if discovery.IsOwnDevice(home, m.Topic, m.Payload) {
			t.Errorf("IsOwnDevice(home, %s) = true for bridge home_2's payload", m.Topic)
		}
	}
	topic := discovery.DoorTopic(home, "front")
	for name, payload := range map[string]string{
		"empty":        ``,
		"not json":     `nope`,
		"other id":     `{"device":{"identifiers":["something_else"],"via_device":"doorbridge_home"}}`,
		"no via":       `{"device":{"identifiers":["doorbridge_home_front"]}}`,
		"wrong via":    `{"device":{"identifiers":["doorbridge_home_front"],"via_device":"doorbridge_office"}}`,
		"wrong prefix": `{"device":{"identifiers":["doorbridge_home_front"],"via_device":"doorbridge_home"}}`,
	} {
		tp := topic
		if name == "wrong prefix" {
			tp = "zigbee/device/doorbridge_home_front/config"
		}
		if discovery.IsOwnDevice(home, tp, []byte(payload)) {
			t.Errorf("%s: IsOwnDevice = true", name)
		}
	}
	abbr := `{"dev":{"ids":"doorbridge_home_front","via_device":"doorbridge_home"}}`
	if !discovery.IsOwnDevice(home, topic, []byte(abbr)) {
		t.Error("abbreviated payload with a string identifier not recognised")
	}
}

// Every bridge-level topic discovery announces (B/N/<leaf>/...) is one
// mqttapi reserves, so that no door id can share it; door topics are
// B/N/<door id>/....
func TestBridgeTopicsReserved(t *testing.T) {
	cfg := newConfig(t, door("front", config.FailSafe, ""))
	prefix := cfg.MQTT.BaseTopic + "/" + cfg.Bridge.ID + "/"
	seen := 0
	for _, m := range discovery.Build(cfg, testInfo) {
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && strings.HasSuffix(k, "_topic") || k == "topic" {
						if rest, ok := strings.CutPrefix(s, prefix); ok {
							leaf, _, _ := strings.Cut(rest, "/")
							if leaf != "front" && !mqttapi.IsBridgeLeaf(leaf) {
								t.Errorf("%s announces %s: %q is not in mqttapi.BridgeLeaves", m.Topic, s, leaf)
							}
							seen++
						}
						continue
					}
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		var p any
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		walk(p)
	}
	if seen < 10 {
		t.Fatalf("only %d topics under %s found in the payloads", seen, prefix)
	}
}
