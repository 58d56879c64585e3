package discovery

import (
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// addInputComponents adds the entities of a door's configured inputs: the
// door contact (device class door, on = open) and one problem binary sensor
// per supervised condition.
//
// Forced open, held open and release failure are separate entities rather
// than one problem sensor with attributes: each gets its own history,
// logbook entry and automation trigger in HA, needs no template to read,
// and exists only when the input that detects it is configured.
func addInputComponents(comps map[string]component, d *config.Door, base, uid, slug string) {
	binary := func(key, entityName, class, leaf string) {
		comps[key] = component{
			Platform:        "binary_sensor",
			Name:            name(entityName),
			UniqueID:        uid + key,
			DefaultEntityID: "binary_sensor." + slug + "_" + key,
			DeviceClass:     class,
			StateTopic:      base + leaf,
			PayloadOn:       mqttapi.On,
			PayloadOff:      mqttapi.Off,
			QoS:             1,
		}
	}
	if d.Contact != nil {
		// B/N/<door>/contact is "None" while the contact cannot be read:
		// HA shows the door as unknown, never as closed.
		binary("contact", "Door", "door", mqttapi.DoorContact)
		binary("forced_open", "Forced open", "problem", mqttapi.DoorForced)
		binary("held_open", "Held open", "problem", mqttapi.DoorHeld)
	}
	if d.LockSense != nil {
		binary("release_failure", "Release failure", "problem", mqttapi.DoorReleaseFailure)
	}
}
