package discovery_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden compares every payload with testdata/<object id>.json. The
// files hold the payload indented for review; since Build writes compact
// JSON (checked here) and indenting keeps key order and values, equal
// indented bytes mean equal payload bytes.
func TestGolden(t *testing.T) {
	msgs := discovery.Build(goldenConfig(t), testInfo)
	seen := map[string]bool{}
	for _, m := range msgs {
		var compact bytes.Buffer
		if err := json.Compact(&compact, m.Payload); err != nil {
			t.Fatalf("%s: not JSON: %v", m.Topic, err)
		}
		if !bytes.Equal(compact.Bytes(), m.Payload) {
			t.Errorf("%s: payload is not compact JSON", m.Topic)
		}
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, m.Payload, "", "  ")
		pretty.WriteByte('\n')

		name := strings.TrimSuffix(strings.TrimPrefix(m.Topic, "homeassistant/device/"), "/config") + ".json"
		seen[name] = true
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./discovery/ -update)", err)
		}
		if !bytes.Equal(pretty.Bytes(), want) {
			t.Errorf("%s differs from %s (run go test ./discovery/ -update and review the diff)\ngot:\n%s", m.Topic, path, pretty.Bytes())
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			if *update {
				_ = os.Remove(f)
				continue
			}
			t.Errorf("%s matches no message: stale golden file", f)
		}
	}
}

func TestBuildTopicsSortedAndDeterministic(t *testing.T) {
	cfg := goldenConfig(t)
	msgs := discovery.Build(cfg, testInfo)
	want := []string{
		"homeassistant/device/doorbridge_home/config",
		"homeassistant/device/doorbridge_home_back/config",
		"homeassistant/device/doorbridge_home_front/config",
		"homeassistant/device/doorbridge_home_side/config",
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Topic != want[i] {
			t.Errorf("message %d: topic %q, want %q", i, m.Topic, want[i])
		}
	}
	if got := discovery.BridgeTopic(cfg); got != want[0] {
		t.Errorf("BridgeTopic = %q", got)
	}
	if got := discovery.DoorTopic(cfg, "back"); got != want[1] {
		t.Errorf("DoorTopic = %q", got)
	}
	again := discovery.Build(cfg, testInfo)
	for i := range msgs {
		if !bytes.Equal(msgs[i].Payload, again[i].Payload) {
			t.Errorf("%s: payload differs between two builds", msgs[i].Topic)
		}
	}
}

func TestRemove(t *testing.T) {
	m := discovery.Remove("homeassistant/device/doorbridge_home_old/config")
	if m.Topic != "homeassistant/device/doorbridge_home_old/config" || m.Payload == nil || len(m.Payload) != 0 {
		t.Errorf("Remove = %+v, want an empty non-nil payload on the topic", m)
	}
}

// TestOriginURL checks that a support URL HA would reject (and with it the
// whole payload) is left out rather than published.
func TestOriginURL(t *testing.T) {
	cfg := goldenConfig(t)
	for url, keep := range map[string]bool{
		"https://example.com/help": true,
		"http://example.com":       true,
		"homeassistant://config/x": true,
		"ftp://example.com":        false,
		"example.com":              false,
		"":                         false,
	} {
		for _, m := range discovery.Build(cfg, discovery.Info{SupportURL: url}) {
			var p struct {
				Origin map[string]any `json:"origin"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			_, has := p.Origin["support_url"]
			_, hasSW := p.Origin["sw_version"]
			if has != keep || hasSW {
				t.Errorf("SupportURL %q: origin %v", url, p.Origin)
			}
		}
	}
}

// TestDoorSuggestedArea checks that a door's area reaches HA as its
// device's suggested_area, unchanged, and that a door without one, like the
// bridge, sends no suggested_area at all (an empty one would be an area
// named "").
func TestDoorSuggestedArea(t *testing.T) {
	front := door("front", config.FailSafe, "")
	front.Area = "Küche <Erdgeschoss> & \"Flur\""
	cfg := newConfig(t, front, door("back", config.FailSecure, ""))
	want := map[string]any{
		discovery.DoorTopic(cfg, "front"): front.Area,
		discovery.DoorTopic(cfg, "back"):  nil,
		discovery.BridgeTopic(cfg):        nil,
	}
	msgs := discovery.Build(cfg, testInfo)
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		var p struct {
			Device map[string]any `json:"device"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		got, has := p.Device["suggested_area"]
		if w := want[m.Topic]; got != w || has != (w != nil) {
			t.Errorf("%s: device suggested_area = %v (present %v), want %v", m.Topic, got, has, w)
		}
		for _, e := range validate(m.Topic, m.Payload, map[string]string{}) {
			t.Error(e)
		}
	}
}
