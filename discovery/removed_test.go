package discovery_test

import (
	"bytes"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

// Removing a door's inputs removes their entities: the door's payload keeps
// each removed component as {"p": platform}, which is what makes Home
// Assistant delete it; stubs read back are not repeated.
func TestWithRemoved(t *testing.T) {
	before := discovery.Build(newConfig(t, withInputs(door("side", config.FailSafe, ""))), testInfo)
	after := discovery.Build(newConfig(t, door("side", config.FailSafe, "")), testInfo)
	topic := after[1].Topic
	if before[1].Topic != topic {
		t.Fatalf("topics differ: %s %s", before[1].Topic, topic)
	}
	m, changed := discovery.WithRemoved(after[1], before[1].Payload)
	if !changed {
		t.Fatal("no stubs for the removed inputs")
	}
	comps := components(t, m.Payload)
	for key, platform := range map[string]string{"contact": "binary_sensor", "forced_open": "binary_sensor",
		"held_open": "binary_sensor", "release_failure": "binary_sensor"} {
		if c := comps[key]; len(c) != 1 || c["p"] != platform {
			t.Errorf("component %s = %v, want {\"p\": %q}", key, c, platform)
		}
	}
	validateAll(t, []discovery.Message{m})
	// The kept components are byte for byte what Build says.
	if !bytes.Contains(m.Payload, []byte(`"device":`)) || len(comps) != len(components(t, after[1].Payload))+4 {
		t.Errorf("payload with stubs: %s", m.Payload)
	}
	// Read back on the next start: the stubs have done their work.
	if again, changed := discovery.WithRemoved(after[1], m.Payload); changed {
		t.Errorf("stubs repeated: %s", again.Payload)
	}
	// Nothing removed, or no payload to compare with: unchanged.
	for name, prev := range map[string][]byte{"same": after[1].Payload, "empty": nil, "not json": []byte("x")} {
		if got, changed := discovery.WithRemoved(after[1], prev); changed || !bytes.Equal(got.Payload, after[1].Payload) {
			t.Errorf("%s: changed", name)
		}
	}
}

// A payload with nothing removed round-trips to the same bytes.
func TestWithRemovedKeepsBytes(t *testing.T) {
	for _, m := range discovery.Build(goldenConfig(t), testInfo) {
		prev := []byte(`{"components":{"gone":{"p":"sensor","unique_id":"x"}}}`)
		got, changed := discovery.WithRemoved(m, prev)
		if !changed {
			t.Fatalf("%s: no stub", m.Topic)
		}
		want := bytes.Replace(m.Payload, []byte(`"components":{`), []byte(`"components":{`), 1)
		if !bytes.Contains(got.Payload, []byte(`"gone":{"p":"sensor"}`)) || len(got.Payload) != len(want)+len(`"gone":{"p":"sensor"},`) {
			t.Errorf("%s: %s", m.Topic, got.Payload)
		}
	}
}
