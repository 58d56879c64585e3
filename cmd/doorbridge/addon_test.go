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

// gen-config.sh turns the add-on's default options into a config that
// check-config accepts, with the doors the options list.
func TestAddonOptionsMapToConfig(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed (.ci/run installs it; the add-on's base image has it)")
	}
	opts := readYAML(t, filepath.Join(addonDir, "config.yaml"))["options"].(map[string]any)
	dir := t.TempDir()
	for name, o := range map[string]map[string]any{"defaults": opts, "sim": withSim(opts)} {
		optsFile := filepath.Join(dir, name+"-options.json")
		b, err := jsonMarshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(optsFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(addonDir, "gen-config.sh"), optsFile, "tcp://core-mosquitto:1883", "addons", "/data/mqtt-password").Output()
		if err != nil {
			t.Fatalf("gen-config.sh %s: %v", name, err)
		}
		cfgFile := filepath.Join(dir, name+"-config.yaml")
		if err := os.WriteFile(cfgFile, out, 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := quickCommand("check-config", "-skip-files", "-c", cfgFile).CombinedOutput(); err != nil {
			t.Fatalf("check-config of the add-on's %s options: %v\n%s\n%s", name, err, b, out)
		}
		cfg, err := config.Load(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		doors := o["doors"].([]any)
		if len(cfg.Doors) != len(doors) || cfg.Bridge.StateDir != "/data" || cfg.MQTT.Username != "addons" || cfg.MQTT.URL != "tcp://core-mosquitto:1883" {
			t.Errorf("%s: config %+v from options %v", name, cfg, o)
		}
		for i, d := range doors {
			d := d.(map[string]any)
			if got := cfg.Doors[i]; got.ID != d["id"] || got.FailMode != d["fail_mode"] || got.Relay.Channel != d["channel"] {
				t.Errorf("%s: door %d = %+v, want %v", name, i, got, d)
			}
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// withSim is opts with the sim driver and a maglock and a strike.
func withSim(opts map[string]any) map[string]any {
	o := map[string]any{}
	for k, v := range opts {
		o[k] = v
	}
	o["relay_driver"] = "sim"
	o["doors"] = []any{
		map[string]any{"id": "front", "name": "Front", "fail_mode": "fail_safe", "channel": "0", "egress": true},
		map[string]any{"id": "garage", "name": "Garage", "fail_mode": "fail_secure", "channel": "1", "active_low": true},
	}
	return o
}
