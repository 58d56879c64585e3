package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/internal/testbroker"
)

// startOnEmbedded starts a new embedded broker (no retained messages: a
// restarted one), points the bridge at it and starts it, with a new
// watcher standing in for Home Assistant.
func (h *harness) startOnEmbedded() {
	h.t.Helper()
	h.cfg.EmbeddedBroker.Listen = "127.0.0.1:0"
	eb, err := StartEmbeddedBrokerConfig(h.cfg, testLogger(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { eb.Close() })
	h.cfg.MQTT.URL = eb.BridgeURL()
	h.c = testbroker.Connect(h.t, eb.URL(), "watcher-"+h.t.Name())
	h.start()
}

// On the embedded broker (no retained payloads survive its restart) the
// record in bridge.state_dir says what the last start announced: a
// removed contact gets its {"p": ...} stubs, a removed door its device
// cleared.
func TestRemovedOnEmbeddedBrokerRestart(t *testing.T) {
	h := &harness{t: t, cfg: testConfig("")}
	h.cfg.Bridge.StateDir = t.TempDir()
	h.cfg.Doors[0].Contact = line(chContact)
	h.cfg.Doors = append(h.cfg.Doors, config.Door{ID: "old", Name: "Old", FailMode: config.FailSecure,
		Relay: config.Line{Driver: "sim", Channel: "2"}, UnlockTime: time.Second})
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	h.startOnEmbedded()
	h.ready()
	topic, oldTopic := discovery.DoorTopic(h.cfg, "fs"), discovery.DoorTopic(h.cfg, "old")
	h.c.WaitFor(topic, wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"contact":{"p":"binary_sensor","name"`)
	})
	h.c.WaitFor(oldTopic, wait, func(m testbroker.Message) bool { return len(m.Payload) > 0 })
	h.stop()

	h.cfg.Doors[0].Contact = nil
	h.cfg.Doors = h.cfg.Doors[:2]
	h.startOnEmbedded()
	h.c.WaitFor(topic, wait, func(m testbroker.Message) bool {
		return strings.Contains(string(m.Payload), `"contact":{"p":"binary_sensor"}`) &&
			strings.Contains(string(m.Payload), `"held_open":{"p":"binary_sensor"}`)
	})
	h.c.WaitFor(oldTopic, wait, func(m testbroker.Message) bool { return len(m.Payload) == 0 })

	// HA's birth message: the stubs and the clear are sent again (HA may
	// have been away at the start; the embedded broker keeps no clear).
	mark := h.c.Mark()
	h.c.Publish("homeassistant/status", "online", false)
	h.c.WaitForAfter(mark, oldTopic, wait, func(m testbroker.Message) bool { return len(m.Payload) == 0 })
}
