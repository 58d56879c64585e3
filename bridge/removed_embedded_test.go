package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/broker"
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
	eb, err := broker.Start(h.cfg, testLogger(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { eb.Close() })
	h.cfg.MQTT.URL = eb.BridgeURL()
	h.c = testbroker.Connect(h.t, "tcp://"+eb.Addr(), "watcher-"+h.t.Name())
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

// The discovery record: a state_dir from a release without it loads (it
// knows nothing yet, and learns this config), a later start removes what
// it lost, and a damaged record leaves the retained payloads as the only
// source (nothing removed from the record, no failure to start).
func TestRemovedFromStateRecord(t *testing.T) {
	clk := &fakeClock{t: testStart}
	dir := t.TempDir()
	if err := writeRecord(dir, latchRecord, "0"); err != nil { // an older release's state_dir
		t.Fatal(err)
	}
	withOld := func(c *config.Config) {
		c.Doors[0].Contact = line(chContact)
		c.Doors = append(c.Doors, config.Door{ID: "old", Name: "Old", FailMode: config.FailSecure,
			Relay: config.Line{Driver: "sim", Channel: "2"}, UnlockTime: time.Second})
	}
	l, _ := newTestLoop(t, withClock(clk), withStateDir(dir), withConfig(withOld))
	if len(l.announced.prev) != 0 || len(stubbed(l.discovery())) != 0 || len(l.announced.gone) != 0 {
		t.Fatalf("an older state_dir removed something: prev %v, gone %v", l.announced.prev, l.announced.gone)
	}
	l.flushLater()
	l2, _ := newTestLoop(t, withClock(clk), withStateDir(dir))
	msgs := l2.discovery()
	oldTopic := discovery.DoorTopic(l2.b.cfg, "old")
	if got := strings.Join(l2.announced.gone, ","); got != oldTopic {
		t.Fatalf("devices to clear %q, want %q", got, oldTopic)
	}
	if got := stubbed(msgs); got != discovery.DoorTopic(l2.b.cfg, "fs") {
		t.Fatalf("payloads with stubs: %q, want only the fs door's", got)
	}
	l2.flushLater()

	path := filepath.Join(dir, announcedRecord)
	for name, damage := range map[string]func() error{
		"garbage":  func() error { return os.WriteFile(path, []byte("{\"x\":"), 0o600) },
		"not JSON": func() error { return writeRecord(dir, announcedRecord, "[1,2]") },
		"deleted":  func() error { return os.Remove(path) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		l3, _ := newTestLoop(t, withClock(clk), withStateDir(dir), withConfig(withOld))
		if len(l3.announced.prev) != 0 {
			t.Fatalf("%s record: loaded %v", name, l3.announced.prev)
		}
		l3.discovery()
		l3.flushLater()
		// Rewritten whole: the next start knows the bridge and its three doors.
		if l4, _ := newTestLoop(t, withClock(clk), withStateDir(dir), withConfig(withOld)); len(l4.announced.prev) != 4 {
			t.Fatalf("%s record not rewritten: %v", name, l4.announced.prev)
		}
	}
}

// stubbed lists the topics of msgs whose payload holds a removal stub.
func stubbed(msgs []discovery.Message) string {
	var out []string
	for _, m := range msgs {
		if strings.Contains(string(m.Payload), `{"p":"binary_sensor"}`) {
			out = append(out, m.Topic)
		}
	}
	return strings.Join(out, ",")
}
