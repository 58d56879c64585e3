package main

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	kyaml "github.com/knadh/koanf/parsers/yaml"

	"github.com/doorbridge/doorbridge/config"
)

const addonDir = "../../homeassistant-addon/doorbridge"

// addonKeys are the keys of an add-on's config.yaml in Home Assistant's
// developer documentation (developers.home-assistant.io, "Add-on
// configuration"), with the kind of value each takes.
var addonKeys = map[string]string{
	"name": "str", "version": "str", "slug": "str", "description": "str", "arch": "list",
	"machine": "list", "url": "str", "startup": "str", "webui": "str", "boot": "str",
	"ports": "dict", "ports_description": "dict", "host_network": "bool", "host_ipc": "bool",
	"host_dbus": "bool", "host_pid": "bool", "devices": "list", "homeassistant": "str",
	"hassio_role": "str", "hassio_api": "bool", "homeassistant_api": "bool", "docker_api": "bool",
	"privileged": "list", "full_access": "bool", "apparmor": "any", "map": "list",
	"environment": "dict", "audio": "bool", "video": "bool", "gpio": "bool", "usb": "bool",
	"uart": "bool", "udev": "bool", "devicetree": "bool", "kernel_modules": "bool", "stdin": "bool",
	"legacy": "bool", "options": "dict", "schema": "any", "image": "str", "timeout": "int",
	"tmpfs": "bool", "discovery": "list", "services": "list", "auth_api": "bool", "ingress": "bool",
	"ingress_port": "int", "ingress_entry": "str", "panel_icon": "str", "panel_title": "str",
	"panel_admin": "bool", "backup_exclude": "list", "advanced": "bool", "stage": "str",
	"init": "bool", "watchdog": "str", "realtime": "bool", "journald": "bool", "breaking_versions": "list",
}

var addonRequired = []string{"name", "version", "slug", "description", "arch"}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kyaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// The add-on's config.yaml holds what Home Assistant's add-on schema
// requires, only keys it documents, each of the documented kind, and
// options that pass their own schema.
func TestAddonConfigFollowsHASchema(t *testing.T) {
	cfg := readYAML(t, filepath.Join(addonDir, "config.yaml"))
	for _, k := range addonRequired {
		if _, ok := cfg[k]; !ok {
			t.Errorf("config.yaml lacks required key %s", k)
		}
	}
	for k, v := range cfg {
		kind, ok := addonKeys[k]
		if !ok {
			t.Errorf("config.yaml: %s is not an add-on key Home Assistant documents", k)
			continue
		}
		if !isKind(v, kind) {
			t.Errorf("config.yaml: %s = %#v, want a %s", k, v, kind)
		}
	}
	if slug, _ := cfg["slug"].(string); !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(slug) {
		t.Errorf("slug %q is not URI friendly", slug)
	}
	for _, a := range cfg["arch"].([]any) {
		if !slices.Contains([]string{"armhf", "armv7", "aarch64", "amd64", "i386"}, fmt.Sprint(a)) {
			t.Errorf("arch %v is not one Home Assistant knows", a)
		}
	}
	if s, ok := cfg["startup"]; ok && !slices.Contains([]string{"initialize", "system", "services", "application", "once"}, fmt.Sprint(s)) {
		t.Errorf("startup %v", s)
	}
	if s, ok := cfg["boot"]; ok && !slices.Contains([]string{"auto", "manual"}, fmt.Sprint(s)) {
		t.Errorf("boot %v", s)
	}
	ports, _ := cfg["ports"].(map[string]any)
	for p, host := range ports {
		if !regexp.MustCompile(`^\d+/(tcp|udp)$`).MatchString(p) || host != nil && !isKind(host, "int") {
			t.Errorf("ports: %s: %v", p, host)
		}
	}
	for p := range cfg["ports_description"].(map[string]any) {
		if _, ok := ports[p]; !ok {
			t.Errorf("ports_description: %s is not in ports", p)
		}
	}
	for _, s := range cfg["services"].([]any) {
		if !regexp.MustCompile(`^(mqtt|mysql):(provide|want|need)$`).MatchString(fmt.Sprint(s)) {
			t.Errorf("services: %v", s)
		}
	}
	opts, schema := cfg["options"].(map[string]any), cfg["schema"].(map[string]any)
	for _, err := range checkOptions("options", opts, schema) {
		t.Error(err)
	}
}

func isKind(v any, kind string) bool {
	switch kind {
	case "str":
		_, ok := v.(string)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "int":
		switch v.(type) {
		case int, int64, float64:
			return true
		}
		return false
	case "list":
		_, ok := v.([]any)
		return ok
	case "dict":
		_, ok := v.(map[string]any)
		return ok
	}
	return true
}

// checkOptions validates options against an add-on schema as the
// Supervisor does: every option has a schema entry; a required entry has a
// value; each value has the entry's type (lists of dicts, one level deep).
func checkOptions(where string, opts, schema map[string]any) []error {
	var errs []error
	for k := range opts {
		if _, ok := schema[k]; !ok {
			errs = append(errs, fmt.Errorf("%s.%s has no schema entry", where, k))
		}
	}
	for k, s := range schema {
		v, ok := opts[k]
		switch s := s.(type) {
		case string:
			if !ok {
				if !strings.HasSuffix(s, "?") {
					errs = append(errs, fmt.Errorf("%s.%s (%s) is required and has no default", where, k, s))
				}
				continue
			}
			if err := checkValue(strings.TrimSuffix(s, "?"), v); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %v", where, k, err))
			}
		case []any:
			list, _ := v.([]any)
			if len(s) != 1 {
				errs = append(errs, fmt.Errorf("%s.%s: a list schema has one element", where, k))
				continue
			}
			for i, e := range list {
				if sub, ok := s[0].(map[string]any); ok {
					em, _ := e.(map[string]any)
					errs = append(errs, checkOptions(fmt.Sprintf("%s.%s[%d]", where, k, i), em, sub)...)
				} else if err := checkValue(fmt.Sprint(s[0]), e); err != nil {
					errs = append(errs, fmt.Errorf("%s.%s[%d]: %v", where, k, i, err))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("%s.%s: schema %#v is neither a type nor a list", where, k, s))
		}
	}
	return errs
}

var schemaType = regexp.MustCompile(`^(str|int|float)(\((-?[\d.]*),(-?[\d.]*)\))?$|^(bool|email|url|password|port)$|^match\((.+)\)$|^list\(([^|]+(\|[^|]+)*)\)$|^device(\(.*\))?$`)

// checkValue checks one option value against a schema type of HA's
// documented grammar: str/int/float with optional ranges, bool, email, url,
// password, port, match(REGEX), list(a|b), device.
func checkValue(typ string, v any) error {
	m := schemaType.FindStringSubmatch(typ)
	if m == nil {
		return fmt.Errorf("schema type %q is not one Home Assistant documents", typ)
	}
	s := fmt.Sprint(v)
	switch {
	case m[1] == "str" || m[5] == "password":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%#v is not a string", v)
		}
		return inRange(float64(len(s)), m[3], m[4])
	case m[1] == "int" || m[1] == "float" || m[5] == "port":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%#v is not a number", v)
		}
		if m[5] == "port" {
			return inRange(f, "1", "65535")
		}
		return inRange(f, m[3], m[4])
	case m[5] == "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%#v is not a bool", v)
		}
	case m[5] == "email":
		_, err := mail.ParseAddress(s)
		return err
	case m[5] == "url":
		_, err := url.ParseRequestURI(s)
		return err
	case m[6] != "":
		if !regexp.MustCompile(m[6]).MatchString(s) {
			return fmt.Errorf("%q does not match %s", s, m[6])
		}
	case m[7] != "":
		if !slices.Contains(strings.Split(m[7], "|"), s) {
			return fmt.Errorf("%q is not one of %s", s, m[7])
		}
	}
	return nil
}

func inRange(f float64, lo, hi string) error {
	if l, err := strconv.ParseFloat(lo, 64); err == nil && f < l {
		return fmt.Errorf("%v is below %v", f, l)
	}
	if h, err := strconv.ParseFloat(hi, 64); err == nil && f > h {
		return fmt.Errorf("%v is above %v", f, h)
	}
	return nil
}

// The schema check itself rejects what the Supervisor would.
func TestAddonOptionCheckRejects(t *testing.T) {
	schema := map[string]any{"id": "match(^[a-z]+$)", "mode": "list(a|b)", "n": "int(1,5)", "opt": "str?", "req": "str"}
	for _, opts := range []map[string]any{
		{"id": "A", "mode": "a", "n": 1, "req": "x"},
		{"id": "a", "mode": "c", "n": 1, "req": "x"},
		{"id": "a", "mode": "a", "n": 9, "req": "x"},
		{"id": "a", "mode": "a", "n": 1},
		{"id": "a", "mode": "a", "n": 1, "req": "x", "extra": true},
	} {
		if errs := checkOptions("options", opts, schema); len(errs) == 0 {
			t.Errorf("%v passed", opts)
		}
	}
	if errs := checkOptions("options", map[string]any{"id": "a", "mode": "b", "n": 5, "req": "x"}, schema); len(errs) != 0 {
		t.Errorf("valid options refused: %v", errs)
	}
}

// build.yaml has a base image for every arch, and the Dockerfile a release
// binary (as scripts/build-release.sh names them) for every arch.
func TestAddonImageCoversEveryArch(t *testing.T) {
	cfg := readYAML(t, filepath.Join(addonDir, "config.yaml"))
	build := readYAML(t, filepath.Join(addonDir, "build.yaml"))["build_from"].(map[string]any)
	docker := readRepoFile(t, "homeassistant-addon/doorbridge/Dockerfile")
	release := readRepoFile(t, "scripts/build-release.sh")
	for _, a := range cfg["arch"].([]any) {
		arch := fmt.Sprint(a)
		if _, ok := build[arch]; !ok {
			t.Errorf("build.yaml has no base image for %s", arch)
		}
		m := regexp.MustCompile(`(?m)^\s*` + arch + `\) bin=(doorbridge-linux-[a-z0-9-]+) ;;`).FindStringSubmatch(docker)
		if m == nil {
			t.Errorf("Dockerfile does not map %s to a release binary", arch)
			continue
		}
		plat := strings.Replace(strings.TrimPrefix(m[1], "doorbridge-"), "-", "/", -1)
		if !strings.Contains(release, plat) {
			t.Errorf("Dockerfile wants %s, which scripts/build-release.sh does not build (%s)", m[1], plat)
		}
	}
	for _, want := range []string{"ARG BUILD_FROM", "FROM $BUILD_FROM", "sha256sum -c", `CMD [ "/run.sh" ]`} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// gen-config.sh turns the add-on's default options, and options for every
// relay driver the schema offers (and a mix of boards with Zigbee2MQTT
// detectors), into a config that check-config accepts, with the doors and
// drivers the options list. Each options set passes the add-on's schema.
func TestAddonOptionsMapToConfig(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed (.ci/run installs it; the add-on's base image has it)")
	}
	addon := readYAML(t, filepath.Join(addonDir, "config.yaml"))
	opts, schema := addon["options"].(map[string]any), addon["schema"].(map[string]any)
	cases := map[string]map[string]any{"defaults": opts, "sim": withSim(opts), "mixed": withMixed(opts)}
	drivers := regexp.MustCompile(`^list\((.*)\)$`).FindStringSubmatch(fmt.Sprint(schema["relay_driver"]))
	if drivers == nil {
		t.Fatalf("relay_driver schema %v is not a list", schema["relay_driver"])
	}
	for _, d := range strings.Split(drivers[1], "|") {
		cases["driver-"+d] = withDriver(opts, d)
	}
	dir := t.TempDir()
	for name, o := range cases {
		for _, err := range checkOptions(name, o, schema) {
			t.Error(err)
		}
		cfgFile := filepath.Join(dir, name+"-config.yaml")
		out := genConfig(t, filepath.Join(dir, name+"-options.json"), o, cfgFile)
		if b, err := quickCommand("check-config", "-skip-files", "-c", cfgFile).CombinedOutput(); err != nil {
			t.Errorf("check-config of the add-on's %s options: %v\n%s\n%s", name, err, b, out)
			continue
		}
		cfg, err := config.Load(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		checkAddonConfig(t, name, o, cfg)
	}
}

// genConfig writes o as the Supervisor's options.json and runs
// gen-config.sh on it into cfgFile.
func genConfig(t *testing.T, optsFile string, o map[string]any, cfgFile string) []byte {
	t.Helper()
	b, err := jsonMarshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(optsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(addonDir, "gen-config.sh"), optsFile, "tcp://core-mosquitto:1883", "addons", "/data/mqtt-password").Output()
	if err != nil {
		t.Fatalf("gen-config.sh %s: %v", optsFile, err)
	}
	if err := os.WriteFile(cfgFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAddonConfig compares a generated config with the options it came
// from: the broker, the doors, and each door's driver type.
func checkAddonConfig(t *testing.T, name string, o map[string]any, cfg *config.Config) {
	t.Helper()
	doors := o["doors"].([]any)
	if len(cfg.Doors) != len(doors) || cfg.Bridge.StateDir != "/data" || cfg.MQTT.Username != "addons" || cfg.MQTT.URL != "tcp://core-mosquitto:1883" {
		t.Errorf("%s: config %+v from options %v", name, cfg, o)
	}
	zigbee, _ := o["zigbee_alarms"].([]any)
	if len(cfg.Alarms) != 1+len(zigbee) {
		t.Errorf("%s: %d alarms from options %v", name, len(cfg.Alarms), o)
	}
	if _, ups := o["nut_ups"]; ups != (len(cfg.Power) == 1 && cfg.Power[0].Type == "nut" && cfg.Power[0].UPS == o["nut_ups"]) {
		t.Errorf("%s: power %+v from options %v", name, cfg.Power, o)
	}
	types := map[string]string{}
	for _, d := range cfg.Drivers {
		types[d.ID] = d.Type
	}
	for i, d := range doors {
		d := d.(map[string]any)
		want, ok := d["driver"]
		if !ok {
			want = o["relay_driver"]
		}
		if got := cfg.Doors[i]; got.ID != d["id"] || got.FailMode != d["fail_mode"] || got.Relay.Channel != d["channel"] || types[got.Relay.Driver] != want {
			t.Errorf("%s: door %d = %+v on a %s driver, want %v on %v", name, i, got, types[got.Relay.Driver], d, want)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func copyOptions(opts map[string]any) map[string]any {
	o := map[string]any{}
	for k, v := range opts {
		o[k] = v
	}
	return o
}

// withSim is opts with the sim driver and a maglock and a strike.
func withSim(opts map[string]any) map[string]any {
	o := copyOptions(opts)
	o["relay_driver"] = "sim"
	o["doors"] = []any{
		map[string]any{"id": "front", "name": "Front", "fail_mode": "fail_safe", "channel": "0", "egress": true},
		map[string]any{"id": "garage", "name": "Garage", "fail_mode": "fail_secure", "channel": "1", "active_low": true},
	}
	return o
}

// withDriver is opts with relay_driver d, the options that driver needs
// and a channel name it takes.
func withDriver(opts map[string]any, d string) map[string]any {
	o := copyOptions(opts)
	o["relay_driver"] = d
	channel := map[string]string{"gpio": "GPIO26", "mcp23017": "A0", "modbus": "0", "sim": "0"}[d]
	switch d {
	case "mcp23017":
		o["i2c_bus"], o["i2c_address"] = "/dev/i2c-1", "0x21"
	case "modbus":
		o["modbus_url"], o["modbus_unit_id"] = "tcp://192.168.1.50:502", 2
	}
	o["doors"] = []any{map[string]any{"id": "front", "name": "Front", "fail_mode": "fail_safe", "channel": channel}}
	return o
}

// withMixed is the homeowner: two maglocks on a Pi relay HAT, a
// strike on a Modbus RTU board, Zigbee2MQTT smoke detectors, and a UPS on
// the NUT add-on.
func withMixed(opts map[string]any) map[string]any {
	o := copyOptions(opts)
	o["relay_driver"] = "mcp23017"
	o["modbus_url"], o["modbus_speed"] = "rtu:///dev/ttyUSB0", 19200
	o["doors"] = []any{
		map[string]any{"id": "front", "name": "Front", "fail_mode": "fail_safe", "channel": "A0", "egress": true},
		map[string]any{"id": "back", "name": "Back", "fail_mode": "fail_safe", "channel": "A1"},
		map[string]any{"id": "gate", "name": "Gate", "fail_mode": "fail_secure", "channel": "0", "driver": "modbus"},
	}
	o["zigbee_alarms"] = []any{map[string]any{"topic": "zigbee2mqtt/+", "expect": 3, "availability_topic": "zigbee2mqtt/+/availability"}}
	o["nut_ups"] = "ups"
	return o
}

// A doorbridge.yaml in the add-on's public folder is run as it is, and the
// options are not turned into a config; without it they are.
func TestAddonOwnConfigFile(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed (.ci/run installs it; the add-on's base image has it)")
	}
	addon := readYAML(t, filepath.Join(addonDir, "config.yaml"))
	if maps, _ := addon["map"].([]any); !slices.Contains(maps, any("addon_config:rw")) {
		t.Errorf("config.yaml maps %v, not addon_config:rw", addon["map"])
	}
	dir, public := t.TempDir(), t.TempDir()
	optsFile, out := filepath.Join(dir, "options.json"), filepath.Join(dir, "config.yaml")
	genConfig(t, optsFile, addon["options"].(map[string]any), filepath.Join(dir, "unused.yaml"))
	pick := func() string {
		t.Helper()
		b, err := exec.Command(filepath.Join(addonDir, "config-file.sh"), public, optsFile, "tcp://core-mosquitto:1883", "addons", "/data/mqtt-password", out).Output()
		if err != nil {
			t.Fatalf("config-file.sh: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := pick(); got != out {
		t.Fatalf("without doorbridge.yaml config-file.sh picks %q, want %q", got, out)
	}
	if b, err := quickCommand("check-config", "-skip-files", "-c", out).CombinedOutput(); err != nil {
		t.Fatalf("check-config of the options' config: %v\n%s", err, b)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(public, "doorbridge.yaml")
	m := regexp.MustCompile("(?s)## Your own config file.*?```yaml\n(.*?)```").FindStringSubmatch(readRepoFile(t, "homeassistant-addon/doorbridge/DOCS.md"))
	if m == nil {
		t.Fatal("DOCS.md has no yaml example under \"## Your own config file\"")
	}
	if err := os.WriteFile(own, []byte(m[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := pick(); got != own {
		t.Fatalf("with doorbridge.yaml config-file.sh picks %q, want %q", got, own)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("config-file.sh wrote %s from the options although doorbridge.yaml exists (%v)", out, err)
	}
	if b, err := quickCommand("check-config", "-skip-files", "-c", own).CombinedOutput(); err != nil {
		t.Fatalf("check-config of DOCS.md's doorbridge.yaml: %v\n%s", err, b)
	}
}
