package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

func TestDiscoveryPublishedRetained(t *testing.T) {
	h := newHarness(t, nil)
	h.ready()
	want := discovery.Build(h.cfg, discovery.Info{Version: "test", SupportURL: SupportURL})
	if len(want) != 3 {
		t.Fatalf("Build gave %d messages, want bridge + 2 doors", len(want))
	}
	// A client connecting now gets every payload as a retained message.
	late := testbroker.Connect(t, h.broker.URL(), "late")
	for _, m := range want {
		got := late.WaitFor(m.Topic, wait, nil)
		if !got.Retained || string(got.Payload) != string(m.Payload) {
			t.Fatalf("%s: retained=%v payload differs=%v", m.Topic, got.Retained, string(got.Payload) != string(m.Payload))
		}
	}
	// HA's birth message makes the bridge publish discovery and state again.
	mark := h.c.Mark()
	h.c.Publish("homeassistant/status", "online", false)
	h.c.WaitForAfter(mark, discovery.DoorTopic(h.cfg, "fs"), wait, nil)
	h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, payloadIs(StateLocked))
}

func TestRemovedDoorRemovedFromHA(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Doors = append(c.Doors, config.Door{ID: "old", Name: "Old", FailMode: config.FailSecure,
			Relay: config.Line{Driver: "sim", Channel: "2"}, UnlockTime: time.Second})
	})
	h.ready()
	oldTopic := discovery.DoorTopic(h.cfg, "old")
	h.c.WaitFor(oldTopic, wait, func(m testbroker.Message) bool { return len(m.Payload) > 0 })
	h.stop()
	h.cfg.Doors = h.cfg.Doors[:2]
	mark := h.c.Mark()
	h.start()
	h.c.WaitForAfter(mark, oldTopic, wait, func(m testbroker.Message) bool { return len(m.Payload) == 0 })
	// Gone for good: a new client finds no retained config there.
	late := testbroker.Connect(t, h.broker.URL(), "late")
	late.Sync(wait)
	for _, m := range late.Messages(oldTopic) {
		if len(m.Payload) > 0 {
			t.Fatalf("stale discovery still retained on %s", oldTopic)
		}
	}
	// The current doors are untouched.
	late.WaitFor(discovery.DoorTopic(h.cfg, "fs"), wait, func(m testbroker.Message) bool { return len(m.Payload) > 0 })
}

func TestCodes(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("2468"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.Doors[1].CodeHash = string(hash)
		c.Codes.MaxFailures = 3
		c.Codes.Lockout = time.Minute
	})
	h.ready()
	fsec := h.topic("fsec", "set")

	// No code: refused.
	mark := h.c.Mark()
	h.c.Publish(fsec, "UNLOCK", false)
	m := h.c.WaitForAfter(mark, h.topic("fsec", "error"), wait, nil)
	if !strings.Contains(string(m.Payload), "needs a code") {
		t.Fatalf("UNLOCK without code: %s", m.Payload)
	}
	// Right code: accepted.
	h.c.Publish(fsec, `{"action": "UNLOCK", "code": "2468"}`, false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateUnlocked, wait)
	// LOCK never needs a code (HA sends "None" when no code was entered).
	h.c.Publish(fsec, `{"action": "LOCK", "code": "None"}`, false)
	h.c.WaitPayload(h.topic("fsec", "state"), StateLocked, wait)

	// Wrong codes: rejected, published as events; the third locks the keypad out.
	for i := 0; i < 3; i++ {
		mark = h.c.Mark()
		h.c.Publish(fsec, `{"action": "UNLOCK", "code": "1111"}`, false)
		h.c.WaitForAfter(mark, h.topic("fsec", "error"), wait, nil)
	}
	// Events follow the state and the error of their command: wait for the last.
	h.c.WaitFor(h.topic("fsec", "event"), wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"lockout"`)
	})
	ev := h.c.Messages(h.topic("fsec", "event"))
	var types []string
	for _, e := range ev {
		if e.Retained {
			t.Fatalf("event published retained: %s", e.Payload)
		}
		var p struct {
			Type string `json:"event_type"`
		}
		json.Unmarshal(e.Payload, &p)
		types = append(types, p.Type)
	}
	if strings.Count(strings.Join(types, ","), "rejected_code") != 3 || !slices.Contains(types, "lockout") {
		t.Fatalf("events %v: want 3 rejected_code and a lockout", types)
	}
	// Locked out: even the right code is refused.
	mark = h.c.Mark()
	h.c.Publish(fsec, `{"action": "UNLOCK", "code": "2468"}`, false)
	m = h.c.WaitForAfter(mark, h.topic("fsec", "error"), wait, nil)
	if !strings.Contains(string(m.Payload), "locked out") {
		t.Fatalf("right code during lockout: %s", m.Payload)
	}
	if h.power("1") {
		t.Fatalf("strike powered during lockout")
	}
	// The door without a code is unaffected.
	h.c.Publish(h.topic("fs", "set"), "UNLOCK", false)
	h.c.WaitPayload(h.topic("fs", "state"), StateUnlocked, wait)
}

// Home Assistant's birth topic is its own setting, not <discovery_prefix>/
// status: with another discovery prefix the bridge still hears the birth
// on homeassistant/status (mqtt.birth_topic's default).
func TestBirthTopicIsNotTheDiscoveryPrefix(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MQTT.DiscoveryPrefix = "ha-discovery" })
	h.ready()
	mark := h.c.Mark()
	h.c.Publish("homeassistant/status", "online", false)
	h.c.WaitForAfter(mark, discovery.DoorTopic(h.cfg, "fs"), wait, nil)
}

// Removing an input from a door removes its entities from Home Assistant:
// the door's device payload carries {"p": platform} for each, once.
func TestRemovedInputRemovedFromHA(t *testing.T) {
	h := newInputHarness(t, func(c *config.Config) { c.Doors[0].Contact = line(chContact) }, nil)
	h.ready()
	topic := discovery.DoorTopic(h.cfg, "fs")
	hasContact := func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"contact":{"p":"binary_sensor","name"`)
	}
	h.c.WaitFor(topic, wait, hasContact)
	h.stop()
	h.cfg.Doors[0].Contact = nil
	mark := h.c.Mark()
	h.start()
	stub := func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"contact":{"p":"binary_sensor"}`) &&
			strings.Contains(string(m.Payload), `"held_open":{"p":"binary_sensor"}`)
	}
	h.c.WaitForAfter(mark, topic, wait, stub)
	late := testbroker.Connect(t, h.broker.URL(), "late")
	late.WaitFor(topic, wait, func(m testbroker.Message) bool { return m.Retained && stub(m) })

	// The next start leaves the removed components out altogether. The
	// last start published the stubs twice (on reading the retained
	// payload, and with discovery at its first echo): wait for the last of
	// its messages before telling the next start's apart.
	h.stopDrained()
	mark = h.c.Mark()
	h.start()
	h.c.WaitForAfter(mark, h.topic("fs", "state"), wait, nil)
	h.c.Sync(wait)
	for _, m := range h.c.Since(mark) {
		if m.Topic == topic && (stub(m) || hasContact(m)) {
			t.Fatalf("second start republished the contact: %s", m.Payload)
		}
	}
}

// With expect: 3 and one detector reported, Home Assistant's fire alarm
// says Detected; its attributes say why, and clear when all have reported.
func TestAlarmAttributesSayWhy(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Alarms = []config.Alarm{zigbeeSmoke(3)} })
	h.c.Publish("zigbee2mqtt/kitchen_smoke", `{"smoke": false}`, true)
	h.c.WaitPayload("db/t1/alarm/state", "ON", wait)
	h.c.WaitPayload("db/t1/alarm/attributes", `{"reason":"zigbee2mqtt/+: 1 of 3 expected sources reported"}`, wait)
	h.c.Publish("zigbee2mqtt/hall_smoke", `{"smoke": false}`, true)
	h.c.Publish("zigbee2mqtt/attic_smoke", `{"smoke": false}`, true)
	h.c.WaitPayload("db/t1/alarm/state", "OFF", wait)
	h.c.WaitPayload("db/t1/alarm/attributes", `{"reason":""}`, wait)
	h.c.Publish("zigbee2mqtt/attic_smoke", `{"smoke": true}`, true)
	h.c.WaitPayload("db/t1/alarm/attributes", `{"reason":"zigbee2mqtt/attic_smoke=alarm"}`, wait)
}
