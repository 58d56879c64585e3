package discovery

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/doorbridge/doorbridge/config"
)

// objectPrefix starts every device object id (and unique id) doorbridge owns.
const objectPrefix = "doorbridge_"

// BridgeID returns the bridge device's identifier and discovery object id:
// "doorbridge_<bridge id>", each '_' of the bridge id written 'U'. Door
// devices name it as their via_device.
//
// Ids are joined with '_', and both ids may hold '_': written as is, bridge
// "home" with door "garage" and bridge "home_garage" would share a device
// id, a discovery topic and Home Assistant's device. Config ids are lower
// case, so 'U' cannot stand in one: the bridge part ends at the first '_'.
// A bridge id without '_' keeps the ids it always had.
func BridgeID(cfg *config.Config) string {
	return objectPrefix + strings.ReplaceAll(cfg.Bridge.ID, "_", "U")
}

// legacyBridgeID is BridgeID as it was before the escape: what a bridge
// whose id holds '_' announced then, found and removed at start.
func legacyBridgeID(cfg *config.Config) string { return objectPrefix + cfg.Bridge.ID }

// DoorID returns a door device's identifier and discovery object id,
// BridgeID + "_<door id>".
func DoorID(cfg *config.Config, doorID string) string { return BridgeID(cfg) + "_" + doorID }

// BridgeTopic returns the bridge device's discovery topic,
// "<discovery_prefix>/device/doorbridge_<bridge id>/config".
func BridgeTopic(cfg *config.Config) string { return deviceTopic(cfg, BridgeID(cfg)) }

// DoorTopic returns a door device's discovery topic,
// "<discovery_prefix>/device/doorbridge_<bridge id>_<door id>/config".
func DoorTopic(cfg *config.Config, doorID string) string {
	return deviceTopic(cfg, DoorID(cfg, doorID))
}

func deviceTopic(cfg *config.Config, objectID string) string {
	return cfg.MQTT.DiscoveryPrefix + "/device/" + objectID + "/config"
}

// IsOwnTopic reports whether a device-discovery topic may belong to this
// bridge: its own topic or one under <prefix>/device/<BridgeID>_*/config,
// or the same under the id it had before BridgeID escaped '_'. At start the
// bridge removes the own topics that Build no longer returns (doors deleted
// from the config, old ids).
//
// The old ids were ambiguous: bridge "home" also matches the old topics of
// a bridge "home_2" on the same broker. Use IsOwnDevice, which also reads
// the retained payload, before removing.
func IsOwnTopic(cfg *config.Config, topic string) bool {
	_, _, ok := ownObjectID(cfg, topic)
	return ok
}

// ownObjectID returns the object id of topic, and the bridge device id of
// this bridge it falls under (the current or the legacy one).
func ownObjectID(cfg *config.Config, topic string) (objectID, bridge string, ok bool) {
	objectID, ok = deviceObjectID(cfg, topic)
	if !ok {
		return "", "", false
	}
	for _, own := range []string{BridgeID(cfg), legacyBridgeID(cfg)} {
		if objectID == own {
			return objectID, own, true
		}
		if door, ok := strings.CutPrefix(objectID, own+"_"); ok && door != "" {
			return objectID, own, true
		}
	}
	return "", "", false
}

// IsOwnDevice is IsOwnTopic confirmed by the retained payload found on the
// topic: the device must be this bridge's own (identifier BridgeID, no
// via_device), or a door naming it as via_device. An empty payload (already
// removed) or one not written by doorbridge is not ours.
func IsOwnDevice(cfg *config.Config, topic string, payload []byte) bool {
	objectID, own, ok := ownObjectID(cfg, topic)
	if !ok {
		return false
	}
	var p struct {
		Device map[string]json.RawMessage `json:"device"`
		Dev    map[string]json.RawMessage `json:"dev"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return false
	}
	dev := p.Device
	if dev == nil {
		dev = p.Dev
	}
	if !slices.Contains(stringList(dev, "identifiers", "ids"), objectID) {
		return false
	}
	via := stringList(dev, "via_device")
	if objectID == own {
		return len(via) == 0
	}
	return slices.Contains(via, own)
}

// deviceObjectID returns the object id of a "<prefix>/device/<id>/config"
// topic under this bridge's discovery prefix.
func deviceObjectID(cfg *config.Config, topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, cfg.MQTT.DiscoveryPrefix+"/device/")
	if !ok {
		return "", false
	}
	objectID, ok := strings.CutSuffix(rest, "/config")
	if !ok || !validObjectID(objectID) {
		return "", false
	}
	return objectID, true
}

// validObjectID matches HA's discovery topic pattern for ids, [a-zA-Z0-9_-]+.
func validObjectID(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// stringList reads the first present key of m as a string or a list of
// strings (HA accepts both for identifiers).
func stringList(m map[string]json.RawMessage, keys ...string) []string {
	for _, k := range keys {
		raw, ok := m[k]
		if !ok {
			continue
		}
		var one string
		if json.Unmarshal(raw, &one) == nil {
			return []string{one}
		}
		var many []string
		if json.Unmarshal(raw, &many) == nil {
			return many
		}
		return nil
	}
	return nil
}
