// Package discovery builds Home Assistant MQTT device-discovery payloads.
//
// Everything here is a pure function of the configuration and the bridge's
// identity: it returns topics and bytes and knows nothing of MQTT clients.
// The caller publishes every Message retained, on start and again whenever
// Home Assistant announces itself on homeassistant/status.
//
// One device-discovery message describes the bridge (alarm, power, lockdown
// and maintenance entities) and one describes each door (lock, sensors,
// event), linked to the bridge with via_device. Payloads use full key names;
// only the platform key is abbreviated ("p"), as in HA's own examples.
package discovery

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/doorbridge/doorbridge/config"
)

// Info is what discovery needs beyond the config.
type Info struct {
	// Version is the bridge's software version (origin and bridge device
	// sw_version); "" leaves it out.
	Version string
	// SupportURL is the origin's support_url. Only http, https and
	// homeassistant:// URLs are accepted by HA (any other value makes HA drop
	// the whole payload), so anything else is left out.
	SupportURL string
}

// Message is one discovery message. It is always published retained.
type Message struct {
	Topic   string
	Payload []byte
}

// Build returns one device-discovery message per door and one for the
// bridge, sorted by topic. The bytes are deterministic: struct fields are
// written in a fixed order and component maps with sorted keys.
func Build(cfg *config.Config, info Info) []Message {
	msgs := make([]Message, 0, len(cfg.Doors)+1)
	var buf bytes.Buffer
	msgs = append(msgs, Message{Topic: BridgeTopic(cfg), Payload: encode(&buf, bridgePayload(cfg, info))})
	for i := range cfg.Doors {
		d := &cfg.Doors[i]
		msgs = append(msgs, Message{Topic: DoorTopic(cfg, d.ID), Payload: encode(&buf, doorPayload(cfg, d, info))})
	}
	slices.SortFunc(msgs, func(a, b Message) int { return strings.Compare(a.Topic, b.Topic) })
	return msgs
}

// Remove returns the message that removes a whole device from Home Assistant:
// an empty retained payload on its discovery topic.
func Remove(topic string) Message {
	return Message{Topic: topic, Payload: []byte{}}
}

// encode marshals p without HTML escaping (door names may hold '&') and
// without the encoder's trailing newline.
func encode(buf *bytes.Buffer, p *payload) []byte {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		// Only strings, ints, bools, slices and maps of them: cannot fail.
		panic("discovery: " + err.Error())
	}
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
