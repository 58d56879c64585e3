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
		if discovery.IsOwnTopic(home, m.Topic) || discovery.IsOwnDevice(home, m.Topic, m.Payload) {
			t.Errorf("bridge home takes %s, bridge home_2's", m.Topic)
		}
	}
	// What bridge home_2 announced before its ids were escaped looks like
	// home's by topic alone; the payload tells them apart.
	legacy := map[string]string{
		"homeassistant/device/doorbridge_home_2/config":       `{"device":{"identifiers":["doorbridge_home_2"]}}`,
		"homeassistant/device/doorbridge_home_2_front/config": `{"device":{"identifiers":["doorbridge_home_2_front"],"via_device":"doorbridge_home_2"}}`,
	}
	for topic, payload := range legacy {
		if !discovery.IsOwnTopic(home, topic) {
			t.Fatalf("expected %s to look like home's by topic alone", topic)
		}
		if discovery.IsOwnDevice(home, topic, []byte(payload)) {
			t.Errorf("IsOwnDevice(home, %s) = true for bridge home_2's old payload", topic)
		}
		if !discovery.IsOwnDevice(other, topic, []byte(payload)) {
			t.Errorf("IsOwnDevice(home_2, %s) = false for its own old payload: never removed", topic)
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

// Bridge "home" with door "garage" and bridge "home_garage" share no device
// id, discovery topic or unique id; neither takes the other's devices.
func TestIDsUnambiguous(t *testing.T) {
	home := newConfig(t, door("garage", config.FailSafe, ""), door("front", config.FailSafe, ""))
	homeGarage := newConfig(t, door("front", config.FailSafe, ""))
	homeGarage.Bridge.ID = "home_garage"
	seen := map[string]string{}
	for name, cfg := range map[string]*config.Config{"home": home, "home_garage": homeGarage} {
		for _, m := range discovery.Build(cfg, testInfo) {
			var p struct {
				Device     map[string]any            `json:"device"`
				Components map[string]map[string]any `json:"components"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			ids := []string{m.Topic, p.Device["identifiers"].([]any)[0].(string)}
			for _, c := range p.Components {
				ids = append(ids, c["unique_id"].(string))
			}
			for _, id := range ids {
				if other, dup := seen[id]; dup && other != name {
					t.Errorf("%s used by bridge %s and bridge %s", id, other, name)
				}
				seen[id] = name
			}
		}
	}
	for _, m := range discovery.Build(homeGarage, testInfo) {
		if discovery.IsOwnDevice(home, m.Topic, m.Payload) {
			t.Errorf("bridge home takes %s", m.Topic)
		}
	}
	for _, m := range discovery.Build(home, testInfo) {
		if discovery.IsOwnDevice(homeGarage, m.Topic, m.Payload) {
			t.Errorf("bridge home_garage takes %s", m.Topic)
		}
	}
	// A bridge id without '_' keeps its ids.
	if got := discovery.DoorID(home, "garage"); got != "doorbridge_home_garage" {
		t.Errorf("DoorID = %s", got)
	}
}
