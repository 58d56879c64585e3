package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/internal/testbroker"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// announced is one entity of a discovery payload, as HA would read it.
type announced struct {
	device, key string
	c           map[string]any
}

func (a announced) str(k string) string { s, _ := a.c[k].(string); return s }

func (a announced) strs(k string) []string {
	var out []string
	for _, x := range a.c[k].([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestDiscoveryMatchesBridge drives a real bridge through its announced
// commands and checks that everything discovery tells Home Assistant is what
// the bridge does: every state topic is published and carries only values
// the entity declares; every command topic takes every payload the entity
// sends, with no error.
func TestDiscoveryMatchesBridge(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) {
		c.Doors[0].Contact = line(chContact)
		c.Doors[0].LockSense = line(chLockSense)
		c.Power = []config.PowerSource{{Type: config.PowerMQTT, Name: "ups", Topic: "ups/status",
			PayloadOK: "OL", PayloadLost: "OB", Timeout: 10 * time.Second, PollInterval: time.Second}}
	}, nil)
	h.c.Publish("ups/status", "OL", true)
	h.ready()
	var ents []announced
	for _, m := range discovery.Build(h.cfg, discovery.Info{Version: "test", SupportURL: SupportURL}) {
		got := h.c.WaitFor(m.Topic, wait, func(m testbroker.Message) bool { return len(m.Payload) > 0 })
		var p struct {
			Components   map[string]map[string]any `json:"components"`
			Availability []map[string]any          `json:"availability"`
		}
		if err := json.Unmarshal(got.Payload, &p); err != nil {
			t.Fatal(err)
		}
		for _, av := range p.Availability {
			h.c.WaitPayload(av["topic"].(string), av["payload_available"].(string), wait)
		}
		for k, c := range p.Components {
			ents = append(ents, announced{device: m.Topic, key: k, c: c})
		}
	}
	if len(ents) < 20 {
		t.Fatalf("only %d entities announced", len(ents))
	}
	for _, e := range ents {
		h.c.Publish("ups/status", "OL", false) // well inside the source's timeout
		exerciseCommands(t, h, e)
	}
	// The alarm and its reset, as HA's reset button sends it.
	h.c.Publish(h.alarmTopic(), mqttapi.On, true)
	h.c.WaitPayload(h.topic("fs", mqttapi.DoorCause), "alarm", wait)
	h.c.Publish(h.alarmTopic(), mqttapi.Off, true)
	h.c.WaitPayload(h.cfg.MQTT.BaseTopic+"/"+h.cfg.Bridge.ID+"/"+mqttapi.AlarmState, mqttapi.Off, wait)
	mark := h.c.Mark()
	h.c.Publish(h.cfg.MQTT.BaseTopic+"/"+h.cfg.Bridge.ID+"/"+mqttapi.AlarmReset, mqttapi.Reset, false)
	h.c.WaitForAfter(mark, h.topic("fs", mqttapi.DoorState), wait, payloadIs(StateLocked))
	h.c.Sync(wait)
	for _, e := range ents {
		checkStates(t, h, e)
	}
}

// exerciseCommands sends every payload entity e announces on its command
// topic and waits for the bridge to act on it.
func exerciseCommands(t *testing.T, h *harness, e announced) {
	t.Helper()
	cmd := e.str("command_topic")
	if cmd == "" {
		return
	}
	errTopic := h.cfg.MQTT.BaseTopic + "/" + h.cfg.Bridge.ID + "/" + mqttapi.Error
	if door, ok := NewTopics(h.cfg).DoorFromCommandTopic(cmd); ok {
		errTopic = h.topic(door, mqttapi.DoorError)
	}
	send := func(payload, stateWant string, settle func()) {
		t.Helper()
		mark := h.c.Mark()
		h.c.Publish(cmd, payload, false)
		if stateWant != "" {
			h.c.WaitForAfter(mark, e.str("state_topic"), wait, payloadIs(stateWant))
		}
		if settle != nil {
			settle()
		}
		h.c.Sync(wait)
		for _, m := range h.c.Since(mark) {
			if m.Topic == errTopic {
				t.Errorf("%s %s: %s answers %s on %s", e.device, e.key, payload, m.Payload, m.Topic)
			}
		}
	}
	switch p := e.c["p"]; p {
	case "lock":
		send(e.str("payload_unlock"), e.str("state_unlocked"), nil)
		send(e.str("payload_lock"), e.str("state_locked"), nil)
		send(e.str("payload_open"), e.str("state_open"), nil)
		h.c.WaitFor(e.str("state_topic"), wait, payloadIs(e.str("state_locked")))
		send(e.str("payload_lock"), e.str("state_locked"), nil)
	case "switch":
		send(e.str("payload_on"), e.str("payload_on"), nil)
		send(e.str("payload_off"), e.str("payload_off"), nil)
	case "button":
		prefix := h.cfg.MQTT.BaseTopic + "/" + h.cfg.Bridge.ID + "/"
		switch cmd {
		case prefix + mqttapi.Republish:
			send(e.str("payload_press"), "", func() {
				h.c.WaitFor(discovery.BridgeTopic(h.cfg), wait, nil)
			})
		case prefix + mqttapi.AlarmReset:
			// Nothing latched: the bridge says so in a notice.
			send(e.str("payload_press"), "", nil)
		default:
			t.Errorf("button %s %s: command topic %s is not one the bridge reads", e.device, e.key, cmd)
		}
	default:
		t.Errorf("%s %s: platform %v with a command topic not covered by this test", e.device, e.key, p)
	}
}

// checkStates checks what the bridge published on e's state topics.
func checkStates(t *testing.T, h *harness, e announced) {
	t.Helper()
	for _, k := range []string{"state_topic", "json_attributes_topic"} {
		topic := e.str(k)
		if topic == "" {
			continue
		}
		msgs := h.c.Messages(topic)
		if len(msgs) == 0 {
			t.Errorf("%s %s: %s %s: the bridge never published there", e.device, e.key, k, topic)
			continue
		}
		for _, m := range msgs {
			if why := badValue(e, k, string(m.Payload)); why != "" {
				t.Errorf("%s %s: %s on %s: %s", e.device, e.key, m.Payload, topic, why)
			}
		}
	}
}

// badValue says why HA would not take payload on e's topic k, or "".
func badValue(e announced, k, payload string) string {
	switch tpl := e.str("value_template"); {
	case k == "json_attributes_topic" || strings.Contains(tpl, "value_json"):
		var v map[string]any
		if json.Unmarshal([]byte(payload), &v) != nil {
			return "not a JSON object"
		}
		return ""
	case tpl != "":
		// A template over the lock's state (the unlocked sensor).
		if !slices.Contains(mqttapi.LockStates(), payload) {
			return "not a lock state its template maps"
		}
		return ""
	}
	switch e.c["p"] {
	case "lock":
		if !slices.Contains([]string{e.str("state_locked"), e.str("state_unlocked"), e.str("state_open"), e.str("state_jammed")}, payload) {
			return "not one of the lock's states"
		}
	case "binary_sensor", "switch":
		if payload != e.str("payload_on") && payload != e.str("payload_off") && payload != mqttapi.Unknown {
			return "neither payload_on, payload_off nor None"
		}
	case "sensor":
		if e.c["options"] != nil && !slices.Contains(e.strs("options"), payload) {
			return "not one of its options"
		}
		if e.str("device_class") == "timestamp" {
			if _, err := time.Parse(time.RFC3339, payload); err != nil {
				return "not a timestamp"
			}
		}
		if len(payload) > 255 {
			return "over 255 characters"
		}
	case "event":
		var ev struct {
			Type string `json:"event_type"`
		}
		if json.Unmarshal([]byte(payload), &ev) != nil || !slices.Contains(e.strs("event_types"), ev.Type) {
			return "event_type not one of event_types"
		}
	default:
		return "platform not covered: " + strings.TrimSpace(e.str("p"))
	}
	return ""
}
