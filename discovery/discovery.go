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
func encode(buf *bytes.Buffer, p any) []byte {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		// Only strings, ints, bools, slices and maps of them: cannot fail.
		panic("discovery: " + err.Error())
	}
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// WithRemoved returns m with a {"p": "<platform>"} stub for every component
// that previous (the retained payload found on m.Topic, this bridge's own)
// holds and m no longer does: leaving a component out of a device payload
// does not remove its entity from Home Assistant, the stub does. Stubs
// found in previous are already removed and stay out ("then later leave it
// out"). It reports false, and returns m unchanged, when nothing is to be
// removed or previous is not a device payload.
func WithRemoved(m Message, previous []byte) (Message, bool) {
	old, ok := componentPlatforms(previous)
	if !ok {
		return m, false
	}
	return WithRemovedPlatforms(m, old)
}

// Platforms returns the platform of every component m announces (removal
// stubs left out), by component id: what a later start must remove if it
// no longer announces it. Nil when m is not a device payload.
func Platforms(m Message) map[string]string {
	p, _ := componentPlatforms(m.Payload)
	return p
}

// WithRemovedPlatforms is WithRemoved for components known by their
// platforms (Platforms of an earlier payload, kept by the bridge where the
// broker keeps no retained payload).
func WithRemovedPlatforms(m Message, old map[string]string) (Message, bool) {
	if len(old) == 0 {
		return m, false
	}
	var cur wirePayload
	if json.Unmarshal(m.Payload, &cur) != nil {
		return m, false
	}
	added := false
	for key, platform := range old {
		if _, kept := cur.Components[key]; !kept && platform != "" {
			stub, _ := json.Marshal(map[string]string{"p": platform})
			cur.Components[key] = stub
			added = true
		}
	}
	if !added {
		return m, false
	}
	var buf bytes.Buffer
	return Message{Topic: m.Topic, Payload: encode(&buf, &cur)}, true
}

// wirePayload is a payload read back, in payload's key order.
type wirePayload struct {
	Device       json.RawMessage            `json:"device"`
	Origin       json.RawMessage            `json:"origin"`
	Availability json.RawMessage            `json:"availability"`
	Components   map[string]json.RawMessage `json:"components"`
}

// componentPlatforms returns the platform of every full component of a
// device payload (stubs, holding nothing but a platform, are left out), by
// component id; false when p is not a device payload.
func componentPlatforms(p []byte) (map[string]string, bool) {
	var raw struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
		Cmps       map[string]map[string]json.RawMessage `json:"cmps"`
	}
	if json.Unmarshal(p, &raw) != nil {
		return nil, false
	}
	comps := raw.Components
	if comps == nil {
		comps = raw.Cmps
	}
	if comps == nil {
		return nil, false
	}
	out := map[string]string{}
	for key, c := range comps {
		var platform string
		for _, k := range []string{"p", "platform"} {
			if v, ok := c[k]; ok && json.Unmarshal(v, &platform) == nil {
				break
			}
		}
		if len(c) > 1 {
			out[key] = platform
		}
	}
	return out, true
}
