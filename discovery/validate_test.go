package discovery_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	"github.com/doorbridge/doorbridge/mqttapi"
)

// The rules below are Home Assistant's (homeassistant/components/mqtt:
// schemas.py DEVICE_DISCOVERY_SCHEMA, MQTT_ENTITY_DEVICE_INFO_SCHEMA,
// MQTT_ORIGIN_INFO_SCHEMA, the availability schemas; the platform modules
// for required keys) as summarised in docs/ha-mqtt.md.

// Abbreviations HA expands before validating, for the keys checked here.
var (
	rootAbbr = map[string]string{"dev": "device", "o": "origin", "cmps": "components",
		"avty": "availability", "avty_t": "availability_topic", "avty_mode": "availability_mode",
		"avty_tpl": "availability_template", "pl_avail": "payload_available",
		"pl_not_avail": "payload_not_available", "stat_t": "state_topic", "cmd_t": "command_topic",
		"e": "encoding"}
	originAbbr = map[string]string{"sw": "sw_version", "url": "support_url"}
	deviceAbbr = map[string]string{"ids": "identifiers", "cns": "connections", "mf": "manufacturer",
		"mdl": "model", "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version",
		"sn": "serial_number", "sa": "suggested_area", "cu": "configuration_url"}
	availAbbr = map[string]string{"t": "topic", "pl_avail": "payload_available",
		"pl_not_avail": "payload_not_available", "val_tpl": "value_template"}
	componentAbbr = map[string]string{"p": "platform", "uniq_id": "unique_id", "stat_t": "state_topic",
		"cmd_t": "command_topic", "cmd_tpl": "command_template", "dev_cla": "device_class",
		"ent_cat": "entity_category", "ops": "options", "ret": "retain", "def_ent_id": "default_entity_id",
		"obj_id": "object_id", "unit_of_meas": "unit_of_measurement", "stat_cla": "state_class",
		"avty": "availability", "avty_t": "availability_topic", "json_attr_t": "json_attributes_topic",
		"val_tpl": "value_template"}
)

// Keys HA accepts; anything else in these objects rejects the whole payload.
var (
	rootKeys = set("device", "origin", "components", "availability", "availability_topic",
		"availability_mode", "availability_template", "payload_available", "payload_not_available",
		"state_topic", "command_topic", "qos", "encoding", "message_expiry_interval")
	originKeys = set("name", "sw_version", "support_url")
	deviceKeys = set("identifiers", "connections", "name", "manufacturer", "model", "model_id",
		"hw_version", "sw_version", "serial_number", "suggested_area", "via_device", "configuration_url")
	availKeys = set("topic", "payload_available", "payload_not_available", "value_template")
	// required keys per platform (besides platform and unique_id).
	required = map[string][]string{
		"lock":          {"command_topic"},
		"binary_sensor": {"state_topic"},
		"sensor":        {"state_topic"},
		"switch":        {"command_topic"},
		"button":        {"command_topic"},
		"event":         {"state_topic", "event_types"},
	}
	entityIDPattern = regexp.MustCompile(`^([a-z_]+)\.[a-z0-9]+(_[a-z0-9]+)*$`)
	objectIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// endOfString ends a Python regular expression at the end of the string.
const endOfString = `(?![\s\S])`

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// expand replaces abbreviations; using both forms of a key is an error.
func expand(where string, m map[string]any, abbr map[string]string, errs *[]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		full := k
		if f, ok := abbr[k]; ok {
			full = f
		}
		if _, dup := out[full]; dup {
			*errs = append(*errs, fmt.Sprintf("%s: %q given twice (full and abbreviated)", where, full))
		}
		out[full] = v
	}
	return out
}

func checkKeys(where string, m map[string]any, allowed map[string]bool, errs *[]string) {
	for k := range m {
		if !allowed[k] {
			*errs = append(*errs, fmt.Sprintf("%s: key %q is not allowed (HA rejects the whole payload)", where, k))
		}
	}
}

// validate checks one device-discovery message and returns every problem.
// uniq collects unique ids across the messages of one bridge.
func validate(topic string, payload []byte, uniq map[string]string) []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, topic+": "+fmt.Sprintf(format, args...)) }

	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[1] != "device" || parts[3] != "config" || !objectIDPattern.MatchString(parts[2]) {
		add("not a device discovery topic <prefix>/device/<[a-zA-Z0-9_-]+>/config")
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		add("not a JSON object: %v", err)
		return errs
	}
	root := expand("root", raw, rootAbbr, &errs)
	checkKeys("root", root, rootKeys, &errs)

	origin, ok := root["origin"].(map[string]any)
	if !ok {
		add("origin missing")
	} else {
		origin = expand("origin", origin, originAbbr, &errs)
		checkKeys("origin", origin, originKeys, &errs)
		if s, _ := origin["name"].(string); s == "" {
			add("origin.name missing")
		}
		if s, ok := origin["support_url"].(string); ok {
			u, err := url.Parse(s)
			if !strings.HasPrefix(s, "homeassistant://") && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
				add("origin.support_url %q is not http(s) or homeassistant://", s)
			}
		}
	}

	dev, ok := root["device"].(map[string]any)
	if !ok {
		add("device missing")
	} else {
		dev = expand("device", dev, deviceAbbr, &errs)
		checkKeys("device", dev, deviceKeys, &errs)
		ids, _ := dev["identifiers"].([]any)
		cns, _ := dev["connections"].([]any)
		if s, ok := dev["identifiers"].(string); ok && s != "" {
			ids = []any{s}
		}
		if len(ids) == 0 && len(cns) == 0 {
			add("device has neither identifiers nor connections")
		}
		// HA's cv.string: a string, and a null would not be one.
		if v, has := dev["suggested_area"]; has {
			if _, ok := v.(string); !ok {
				add("device suggested_area %v is not a string", v)
			}
		}
	}

	rootAvail := checkAvailability("root", root, add)

	comps, ok := root["components"].(map[string]any)
	if !ok || len(comps) == 0 {
		add("components missing or empty")
	}
	for id, c := range comps {
		where := "component " + id
		if strings.Contains(id, " ") || id == "" {
			add("%s: component id must be non-empty without spaces (HA joins ids with spaces)", where)
		}
		cm, ok := c.(map[string]any)
		if !ok {
			add("%s: not an object", where)
			continue
		}
		cm = expand(where, cm, componentAbbr, &errs)
		platform, _ := cm["platform"].(string)
		if platform == "" {
			add("%s: platform (p) missing", where)
			continue
		}
		if len(cm) == 1 {
			continue // {"p": platform}: HA removes the component
		}
		uid, _ := cm["unique_id"].(string)
		if uid == "" {
			add("%s: unique_id missing", where)
		} else if other, dup := uniq[uid]; dup {
			add("%s: unique_id %q also used by %s", where, uid, other)
		} else {
			uniq[uid] = topic + " " + id
		}
		reqs, known := required[platform]
		if !known {
			add("%s: platform %q is not one doorbridge validates", where, platform)
		}
		for _, k := range reqs {
			if _, ok := cm[k]; !ok {
				add("%s: %s requires %s", where, platform, k)
			}
		}
		if _, ok := cm["object_id"]; ok {
			add("%s: object_id was removed in HA 2026.4; use default_entity_id", where)
		}
		if _, ok := cm["~"]; ok {
			add("%s: ~ is not used by doorbridge", where)
		}
		if de, ok := cm["default_entity_id"].(string); ok {
			m := entityIDPattern.FindStringSubmatch(de)
			if m == nil || m[1] != platform {
				add("%s: default_entity_id %q is not a valid %s entity id", where, de, platform)
			}
		}
		if !checkAvailability(where, cm, add) && !rootAvail {
			add("%s: no availability (neither in the component nor shared at the root)", where)
		}
		if qos, ok := cm["qos"].(float64); ok && qos != 0 && qos != 1 && qos != 2 {
			add("%s: qos %v", where, qos)
		}
		if _, ok := cm["command_topic"]; ok {
			if q, _ := cm["qos"].(float64); q != 1 {
				add("%s: commands must be sent with qos 1", where)
			}
			if r, ok := cm["retain"].(bool); !ok || r {
				add("%s: command component must set retain: false", where)
			}
		}
		for _, k := range []string{"state_topic", "command_topic", "json_attributes_topic"} {
			if s, ok := cm[k].(string); ok && (s == "" || strings.ContainsAny(s, "+#")) {
				add("%s: %s %q is not a plain topic", where, k, s)
			}
		}
		cat, hasCat := cm["entity_category"].(string)
		if hasCat && cat != "diagnostic" && cat != "config" {
			add("%s: entity_category %q", where, cat)
		}
		if (platform == "sensor" || platform == "binary_sensor") && cat == "config" {
			add("%s: a %s with entity_category config is not added by HA", where, platform)
		}
		if platform == "sensor" {
			_, hasOpts := cm["options"]
			isEnum := cm["device_class"] == "enum"
			if hasOpts != isEnum {
				add("%s: options and device_class enum go together", where)
			}
			if opts, _ := cm["options"].([]any); hasOpts && len(opts) == 0 {
				add("%s: empty options", where)
			}
			if hasOpts {
				for _, k := range []string{"unit_of_measurement", "state_class"} {
					if _, ok := cm[k]; ok {
						add("%s: enum sensor with %s", where, k)
					}
				}
			}
		}
		if platform == "event" {
			if ev, _ := cm["event_types"].([]any); len(ev) == 0 {
				add("%s: empty event_types", where)
			}
		}
		if cf, ok := cm["code_format"].(string); ok {
			// HA uses Python's re.match: anchored at the start only, and
			// "$" matches before a final newline. Only a lookahead for the
			// end of the string closes it (Go's regexp has none: the
			// Python test runs the real thing).
			body, closed := strings.CutSuffix(cf, endOfString)
			if !strings.HasPrefix(cf, "^") || !closed {
				add("%s: code_format %q is not anchored with ^ and %s (HA uses Python's re.match)", where, cf, endOfString)
			}
			if _, err := regexp.Compile(body); err != nil {
				add("%s: code_format: %v", where, err)
			}
			if tpl, _ := cm["command_template"].(string); !strings.Contains(tpl, "code") {
				add("%s: code_format without a command_template carrying the code: the code never reaches the bridge", where)
			}
		}
	}
	walkRetain("", raw, add)
	return errs
}

// checkAvailability checks an object's availability keys and reports
// whether it has any.
func checkAvailability(where string, m map[string]any, add func(string, ...any)) bool {
	has := false
	if s, ok := m["availability_topic"].(string); ok && s != "" {
		has = true
	}
	if v, ok := m["availability"]; ok {
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for i, e := range list {
			em, ok := e.(map[string]any)
			if !ok {
				add("%s: availability[%d] is not an object", where, i)
				continue
			}
			var errs []string
			em = expand(where, em, availAbbr, &errs)
			checkKeys(fmt.Sprintf("%s availability[%d]", where, i), em, availKeys, &errs)
			for _, e := range errs {
				add("%s", e)
			}
			if s, _ := em["topic"].(string); s == "" {
				add("%s: availability[%d] has no topic", where, i)
			} else {
				has = true
			}
		}
	}
	return has
}

// walkRetain reports retain: true anywhere in the payload.
func walkRetain(path string, v any, add func(string, ...any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if (k == "retain" || k == "ret") && e == true {
				add("%s.%s: retain true", path, k)
			}
			walkRetain(path+"."+k, e, add)
		}
	case []any:
		for i, e := range v {
			walkRetain(fmt.Sprintf("%s[%d]", path, i), e, add)
		}
	}
}

// validateAll checks every message of one Build.
func validateAll(t *testing.T, msgs []discovery.Message) {
	t.Helper()
	uniq := map[string]string{}
	for _, m := range msgs {
		for _, e := range validate(m.Topic, m.Payload, uniq) {
			t.Error(e)
		}
	}
}

func TestPayloadsFollowHARules(t *testing.T) {
	dashed := door("back-door", config.FailSecure, "")
	dashed.Name = "Back door"
	cases := map[string]*config.Config{
		"golden": goldenConfig(t),
		// ids that, joined with '_', could collide with another door's or
		// the bridge's unique ids if component keys were chosen carelessly.
		"tricky ids": newConfig(t, door("fire", config.FailSafe, ""), door("a", config.FailSafe, ""),
			door("a_lock", config.FailSafe, ""), door("lock", config.FailSafe, ""),
			door("bridge", config.FailSafe, ""), door("fire_alarm", config.FailSafe, ""),
			door("fail", config.FailSafe, ""), door("reset_fire", config.FailSafe, "")),
		"dash": newConfig(t, dashed),
		// input components joined to door ids must not collide either.
		"inputs": newConfig(t, withInputs(door("a", config.FailSafe, "")), withInputs(door("a_held", config.FailSafe, "")),
			withInputs(door("a_forced", config.FailSafe, "")), withInputs(door("contact", config.FailSafe, ""))),
		// HA slugs "site-1" to "site_1": entity ids must already be slugs.
		"dashed bridge": func() *config.Config {
			c := newConfig(t, dashed)
			c.Bridge.ID = "site-1"
			return c
		}(),
		"underscored bridge": func() *config.Config {
			c := newConfig(t, door("front", config.FailSafe, ""))
			c.Bridge.ID = "home_garage"
			return c
		}(),
		"bridge code": func() *config.Config {
			c := newConfig(t, door("front", config.FailSafe, ""))
			c.Bridge.CodeHash = testHash
			return c
		}(),
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			msgs := discovery.Build(cfg, testInfo)
			if len(msgs) != len(cfg.Doors)+1 {
				t.Fatalf("%d messages for %d doors", len(msgs), len(cfg.Doors))
			}
			validateAll(t, msgs)
		})
	}
}

// TestDoorWithDash checks that a door id with '-' gives valid topics and
// ids: HA's topic pattern allows '-', entity ids do not.
func TestDoorWithDash(t *testing.T) {
	cfg := newConfig(t, door("back-door", config.FailSecure, testHash))
	topic := discovery.DoorTopic(cfg, "back-door")
	if topic != "homeassistant/device/doorbridge_home_back-door/config" {
		t.Errorf("DoorTopic = %q", topic)
	}
	for _, m := range discovery.Build(cfg, testInfo) {
		if m.Topic != topic {
			continue
		}
		comps := components(t, m.Payload)
		if got := comps["lock"]["default_entity_id"]; got != "lock.back_door" {
			t.Errorf("lock default_entity_id = %v, want lock.back_door", got)
		}
		if got := comps["lock"]["unique_id"]; got != "doorbridge_home_back-door_lock" {
			t.Errorf("lock unique_id = %v", got)
		}
		if got := comps["lock"]["command_topic"]; got != "doorbridge/home/back-door/set" {
			t.Errorf("lock command_topic = %v", got)
		}
		return
	}
	t.Fatalf("no message on %s", topic)
}

// TestLockCode checks that only doors with an effective code hash ask HA
// for a code, and that the template carries it.
func TestLockCode(t *testing.T) {
	cfg := newConfig(t, door("own", config.FailSecure, testHash), door("none", config.FailSafe, ""))
	check := func(cfg *config.Config, doorID string, wantCode bool) {
		t.Helper()
		for _, m := range discovery.Build(cfg, testInfo) {
			if m.Topic != discovery.DoorTopic(cfg, doorID) {
				continue
			}
			lock := components(t, m.Payload)["lock"]
			_, hasFmt := lock["code_format"]
			tpl, _ := lock["command_template"].(string)
			if hasFmt != wantCode || strings.Contains(tpl, "{{ code | tojson }}") != wantCode {
				t.Errorf("door %s: code_format present %v, template %q; want code %v", doorID, hasFmt, tpl, wantCode)
			}
			if wantCode && lock["code_format"] != `^[0-9]{4,8}(?![\s\S])` {
				t.Errorf("door %s: code_format %v", doorID, lock["code_format"])
			}
			if lock["payload_open"] != "OPEN" {
				t.Errorf("door %s: payload_open %v", doorID, lock["payload_open"])
			}
			if n, ok := lock["name"]; !ok || n != nil {
				t.Errorf("door %s: lock name %v, want null", doorID, n)
			}
			return
		}
		t.Fatalf("no message for door %s", doorID)
	}
	check(cfg, "own", true)
	check(cfg, "none", false)
	cfg.Bridge.CodeHash = testHash // the bridge default now covers "none"
	check(cfg, "none", true)
}

// TestVocabulariesInPayload checks that the exported lists are what HA is
// told.
func TestVocabulariesInPayload(t *testing.T) {
	cfg := goldenConfig(t)
	comps := components(t, discovery.Build(cfg, testInfo)[1].Payload)
	strs := func(v any) []string {
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(string))
		}
		return out
	}
	if got := strs(comps["cause"]["options"]); !slices.Equal(got, mqttapi.Causes()) {
		t.Errorf("cause options %v", got)
	}
	if got := strs(comps["event"]["event_types"]); !slices.Equal(got, mqttapi.EventTypes()) {
		t.Errorf("event types %v", got)
	}
}

// TestValidatorCatches makes sure the validator is not vacuous: each broken
// payload must be reported.
func TestValidatorCatches(t *testing.T) {
	good := `"device":{"identifiers":["x"]},"origin":{"name":"o"},"availability":[{"topic":"a"}]`
	cases := map[string]string{
		"tilde at root":       `{"~":"b",` + good + `,"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"origin extra key":    `{"device":{"identifiers":["x"]},"origin":{"name":"o","version":"1"},"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"origin without name": `{"device":{"identifiers":["x"]},"origin":{"sw":"1"},"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"device extra key":    `{"device":{"identifiers":["x"],"area":"y"},"origin":{"name":"o"},"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"device without ids":  `{"device":{"name":"x"},"origin":{"name":"o"},"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"availability extra":  `{"device":{"identifiers":["x"]},"origin":{"name":"o"},"availability":[{"topic":"a","qos":1}],"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"no platform":         `{` + good + `,"components":{"l":{"unique_id":"u","state_topic":"s"}}}`,
		"no unique_id":        `{` + good + `,"components":{"l":{"p":"sensor","state_topic":"s"}}}`,
		"lock no command":     `{` + good + `,"components":{"l":{"p":"lock","unique_id":"u","state_topic":"s"}}}`,
		"event no types":      `{` + good + `,"components":{"l":{"p":"event","unique_id":"u","state_topic":"s"}}}`,
		"options no enum":     `{` + good + `,"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s","options":["a"]}}}`,
		"enum with unit":      `{` + good + `,"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s","device_class":"enum","options":["a"],"unit_of_measurement":"W"}}}`,
		"sensor config cat":   `{` + good + `,"components":{"l":{"p":"binary_sensor","unique_id":"u","state_topic":"s","entity_category":"config"}}}`,
		"duplicate uid":       `{` + good + `,"components":{"a":{"p":"sensor","unique_id":"u","state_topic":"s"},"b":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"unanchored code":     `{` + good + `,"components":{"l":{"p":"lock","unique_id":"u","command_topic":"c","qos":1,"retain":false,"code_format":"^\\d{4}","command_template":"{{ code }}"}}}`,
		"dollar code":         `{` + good + `,"components":{"l":{"p":"lock","unique_id":"u","command_topic":"c","qos":1,"retain":false,"code_format":"^\\d{4}$","command_template":"{{ code }}"}}}`,
		"retain true":         `{` + good + `,"components":{"l":{"p":"switch","unique_id":"u","command_topic":"c","qos":1,"retain":true}}}`,
		"no availability":     `{"device":{"identifiers":["x"]},"origin":{"name":"o"},"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s"}}}`,
		"object_id":           `{` + good + `,"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s","object_id":"x"}}}`,
		"bad entity id":       `{` + good + `,"components":{"l":{"p":"sensor","unique_id":"u","state_topic":"s","default_entity_id":"lock.x"}}}`,
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if errs := validate("homeassistant/device/x/config", []byte(cases[n]), map[string]string{}); len(errs) == 0 {
			t.Errorf("%s: not reported", n)
		}
	}
}

func components(t *testing.T, payload []byte) map[string]map[string]any {
	t.Helper()
	var p struct {
		Components map[string]map[string]any `json:"components"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	return p.Components
}

// The power entity exists only with a power source: without one nothing
// reports mains, and HA would show it unknown forever.
func TestPowerEntityOnlyWithSource(t *testing.T) {
	cfg := newConfig(t, door("front", config.FailSafe, ""))
	if _, ok := components(t, discovery.Build(cfg, testInfo)[0].Payload)["power"]; ok {
		t.Error("power entity without a power source")
	}
	cfg.Power = []config.PowerSource{{Type: config.PowerMQTT, Name: "ups", Topic: "ups/status"}}
	if c, ok := components(t, discovery.Build(cfg, testInfo)[0].Payload)["power"]; !ok || c["device_class"] != "power" {
		t.Errorf("power entity with a power source: %v", c)
	}
}
