package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	kyaml "github.com/knadh/koanf/parsers/yaml"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/drivers"
)

// configs/reference.yaml is the reference of every key: it loads, it names
// every key the config package accepts (each driver type's own keys, a
// block per power source type), and every value not marked example or
// required is the default: taking its line out changes nothing. A key
// added to the config package without a line there fails this test.
func TestReferenceConfig(t *testing.T) {
	path := filepath.Join("..", "configs", "reference.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := config.Parse(path, data)
	if err != nil {
		t.Fatalf("the reference does not load:\n%v", err)
	}
	raw, err := kyaml.Parser().Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	writtenKeys("", raw, written)
	for _, k := range acceptedKeys(t, ref) {
		if !written[k] {
			t.Errorf("configs/reference.yaml lacks %s: add it with its default", k)
		}
	}
	for _, typ := range []string{config.PowerNUT, config.PowerSysfs, config.PowerMQTT, config.PowerInput} {
		if !slices.ContainsFunc(ref.Power, func(p config.PowerSource) bool { return p.Type == typ }) {
			t.Errorf("configs/reference.yaml has no power source of type %s", typ)
		}
	}
	checkDefaults(t, path, data, ref)
}

// checkDefaults takes out, one at a time, every line holding a key and a
// value not marked example or required, and wants the same config.
func checkDefaults(t *testing.T, path string, data []byte, ref *config.Config) {
	lines := strings.Split(string(data), "\n")
	checked := 0
	for i, line := range lines {
		if !claimsDefault(line) {
			continue
		}
		rest := slices.Concat(lines[:i], lines[i+1:])
		cfg, err := config.Parse(path, []byte(strings.Join(rest, "\n")))
		switch {
		case err != nil:
			t.Errorf("line %d %q: without it the reference does not load (%v): mark it # required or # example", i+1, strings.TrimSpace(line), err)
		case !sameConfig(t, ref, cfg):
			t.Errorf("line %d %q is not the default: without it the config differs; write the default or mark it # example", i+1, strings.TrimSpace(line))
		}
		checked++
	}
	if checked < 80 {
		t.Errorf("only %d lines claim a default; is the reference still written one key a line?", checked)
	}
}

// claimsDefault: a "key: value" line (not a list item's first key, not a
// section) whose comment does not say example or required.
func claimsDefault(line string) bool {
	s := strings.TrimSpace(line)
	if s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "- ") {
		return false
	}
	value, comment, _ := strings.Cut(s, " #")
	comment = strings.TrimSpace(comment)
	if strings.HasPrefix(comment, "example") || strings.HasPrefix(comment, "required") {
		return false
	}
	_, v, ok := strings.Cut(value, ":")
	return ok && strings.TrimSpace(v) != ""
}

// writtenKeys collects the dotted keys of a YAML tree, list entries merged;
// a driver's keys go under its type (drivers.gpio.debounce).
func writtenKeys(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			key := joinKey(prefix, k)
			out[key] = true
			writtenKeys(key, val, out)
		}
	case []any:
		for _, e := range v {
			if m, ok := e.(map[string]any); ok && prefix == "drivers" {
				typ, _ := m["type"].(string)
				writtenKeys("drivers."+typ, m, out)
				continue
			}
			writtenKeys(prefix, e, out)
		}
	}
}

// acceptedKeys lists every key the config package accepts, and each
// registered driver type's keys, decoded from the reference's entry of that
// type.
func acceptedKeys(t *testing.T, ref *config.Config) []string {
	var out []string
	structKeys("", reflect.TypeFor[config.Config](), &out)
	for _, typ := range drivers.Types() {
		i := slices.IndexFunc(ref.Drivers, func(d config.Driver) bool { return d.Type == typ })
		if i < 0 {
			t.Errorf("configs/reference.yaml has no driver of type %s", typ)
			continue
		}
		spec, err := drivers.Decode(typ, ref.Drivers[i].Options)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "drivers."+typ+".id", "drivers."+typ+".type")
		structKeys("drivers."+typ, reflect.TypeOf(spec), &out)
	}
	return out
}

func structKeys(prefix string, typ reflect.Type, out *[]string) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || prefix == "drivers" {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key := joinKey(prefix, name)
		*out = append(*out, key)
		structKeys(key, f.Type, out)
	}
}

func joinKey(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// sameConfig compares two configs as the bridge sees them: drivers by
// their decoded options, an empty list like none, pointers by what they
// point to.
func sameConfig(t *testing.T, a, b *config.Config) bool {
	specs := func(c *config.Config) (config.Config, []drivers.Spec) {
		out := *c
		out.Drivers = slices.Clone(c.Drivers)
		var specs []drivers.Spec
		for i, d := range out.Drivers {
			s, err := drivers.Decode(d.Type, d.Options)
			if err != nil {
				t.Fatal(err)
			}
			specs = append(specs, s)
			out.Drivers[i].Options = nil
		}
		return out, specs
	}
	ca, sa := specs(a)
	cb, sb := specs(b)
	return sameValue(reflect.ValueOf(ca), reflect.ValueOf(cb)) && sameValue(reflect.ValueOf(sa), reflect.ValueOf(sb))
}

func sameValue(a, b reflect.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.Elem().Type() == b.Elem().Type() && sameValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if v := b.MapIndex(k); !v.IsValid() || !sameValue(a.MapIndex(k), v) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() && !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
}
