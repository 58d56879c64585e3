package bridge

import (
	"reflect"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/mqttapi"
)

// Every topic the bridge owns under B/N starts with a leaf mqttapi reserves,
// so that check-config refuses a door id that would share it.
func TestBridgeTopicLeavesReserved(t *testing.T) {
	cfg := testConfig("")
	topics := NewTopics(cfg)
	prefix := cfg.MQTT.BaseTopic + "/" + cfg.Bridge.ID + "/"
	v := reflect.ValueOf(topics)
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.String {
			continue
		}
		rest, ok := strings.CutPrefix(v.Field(i).String(), prefix)
		if !ok || f.Name == "DoorCommandWild" {
			continue // not under B/N (HA's status), or the doors' own
		}
		leaf, _, _ := strings.Cut(rest, "/")
		if !mqttapi.IsBridgeLeaf(leaf) {
			t.Errorf("Topics.%s = %s: %q is not in mqttapi.BridgeLeaves; a door with that id would share it", f.Name, v.Field(i).String(), leaf)
		}
	}
}
