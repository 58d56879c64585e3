package broker

import (
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// topics are the bridge's topics the broker guards: what its own user may
// publish (bridgeACL) and what it never stores retained (liveOnlyTopics).
// The names are mqttapi's, as the bridge's.
type topics struct {
	prefix          string // B/N
	DoorCommandWild string // B/N/+/set
	AlarmReset      string // B/N/alarm/reset
	Republish       string // B/N/republish
}

func newTopics(cfg *config.Config) topics {
	p := mqttapi.Prefix(cfg.MQTT.BaseTopic, cfg.Bridge.ID)
	return topics{
		prefix:          p,
		DoorCommandWild: p + "/+/" + mqttapi.DoorSet,
		AlarmReset:      p + "/" + mqttapi.AlarmReset,
		Republish:       p + "/" + mqttapi.Republish,
	}
}

// discoveryWild is every device-discovery topic under prefix.
func (topics) discoveryWild(prefix string) string { return prefix + "/device/+/config" }

// truncate shortens b for a log line.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
