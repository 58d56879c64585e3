package config

import (
	"strings"

	"github.com/doorbridge/doorbridge/mqttapi"
)

// validateDoorIDNotReserved refuses a door id that is one of the bridge's
// own topic leaves (mqttapi.BridgeLeaves): door "lockdown" would make its ON
// a building-wide lockdown, door "alarm" would flip Home Assistant's fire
// alarm sensor.
func (c *Config) validateDoorIDNotReserved(v *validator, key, id string) {
	if !mqttapi.IsBridgeLeaf(id) {
		return
	}
	p := mqttapi.Prefix(c.MQTT.BaseTopic, c.Bridge.ID) + "/" + id
	v.add(key, "%q is reserved: %s/... are the bridge's own topics, which the door's would share (reserved ids: %s)",
		id, p, strings.Join(mqttapi.BridgeLeaves(), ", "))
}
