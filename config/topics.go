package config

import (
	"slices"
	"strings"
)

// BridgeTopicLeaves are the first levels under B/N (mqtt.base_topic/
// bridge.id) of the bridge's own topics: B/N/alarm/state, B/N/lockdown/set,
// ... A door's topics are B/N/<door id>/..., so a door may not take one of
// these as its id: door "lockdown" would make its ON a building-wide
// lockdown, door "alarm" would flip Home Assistant's fire alarm sensor.
// bridge.NewTopics and discovery's payloads build their topics from these;
// tests in both packages check that every topic they use is listed here.
var bridgeTopicLeaves = []string{
	"alarm", "availability", "drill", "drill_overdue", "error", "events", "hazards",
	"heartbeat", "lockdown", "notice", "power", "problem", "republish",
}

// BridgeTopicLeaves returns the reserved first levels, sorted.
func BridgeTopicLeaves() []string { return slices.Clone(bridgeTopicLeaves) }

// IsBridgeTopicLeaf reports whether id is one of BridgeTopicLeaves.
func IsBridgeTopicLeaf(id string) bool { return slices.Contains(bridgeTopicLeaves, id) }

func (c *Config) validateDoorIDNotReserved(v *validator, key, id string) {
	if !IsBridgeTopicLeaf(id) {
		return
	}
	p := c.MQTT.BaseTopic + "/" + c.Bridge.ID + "/" + id
	v.add(key, "%q is reserved: %s/... are the bridge's own topics, which the door's would share (reserved ids: %s)",
		id, p, strings.Join(bridgeTopicLeaves, ", "))
}
