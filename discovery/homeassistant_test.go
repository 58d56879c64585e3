package discovery_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

// The example dashboard card names entities that the demo config's
// discovery really creates.
func TestDashboardCardEntitiesExist(t *testing.T) {
	cfg, err := config.Load("../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range discovery.Build(cfg, discovery.Info{Version: "test"}) {
		var p struct {
			Components map[string]struct {
				ID string `json:"default_entity_id"`
			} `json:"components"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Components {
			ids[c.ID] = true
		}
	}
	card, err := os.ReadFile("../configs/homeassistant/dashboard-card.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var any map[string]any
	if err := yaml.Unmarshal(card, &any); err != nil {
		t.Fatalf("dashboard card is not YAML: %v", err)
	}
	found := regexp.MustCompile(`(?m)^\s*-?\s*(?:entity:\s*)?((?:lock|sensor|binary_sensor|switch|button|event)\.[a-z0-9_]+)\s*$`).FindAllSubmatch(card, -1)
	if len(found) < 10 {
		t.Fatalf("found only %d entity ids in the card", len(found))
	}
	for _, f := range found {
		if !ids[string(f[1])] {
			t.Errorf("dashboard card names %s, which discovery does not create for configs/demo.yaml", f[1])
		}
	}
}

// The blueprint publishes to doorbridge's default alarm topic, retained, with
// the default payloads.
func TestBlueprintMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile("../configs/homeassistant/blueprints/automation/doorbridge/smoke_release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("blueprint is not YAML: %v", err)
	}
	def := config.DefaultAlarm(config.Default().MQTT.BaseTopic)
	var bp struct {
		Blueprint struct {
			Domain string `yaml:"domain"`
			Input  map[string]struct {
				Default any `yaml:"default"`
			} `yaml:"input"`
		} `yaml:"blueprint"`
	}
	if err := doc.Decode(&bp); err != nil {
		t.Fatal(err)
	}
	if bp.Blueprint.Domain != "automation" {
		t.Errorf("domain %q", bp.Blueprint.Domain)
	}
	if got := bp.Blueprint.Input["alarm_topic"].Default; got != def.Topic {
		t.Errorf("blueprint alarm_topic default %v, doorbridge's default %q", got, def.Topic)
	}
	want := regexp.MustCompile(`payload: "\{\{ '` + def.PayloadOn + `' if alarm else \('' if trouble else '` + def.PayloadOff + `'\) \}\}"\s+retain: true`)
	if !want.Match(data) {
		t.Errorf("blueprint does not publish %s/%s retained", def.PayloadOn, def.PayloadOff)
	}
}
