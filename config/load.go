package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
)

// EnvPrefix starts every environment override: DOORBRIDGE_MQTT__PASSWORD
// sets mqtt.password. Only variables with a "__" are read as keys, so
// DOORBRIDGE_CONFIG (the config path) is not mistaken for one.
const EnvPrefix = "DOORBRIDGE_"

// DefaultPath is used when neither -c nor $DOORBRIDGE_CONFIG names a file.
const DefaultPath = "/etc/doorbridge/config.yaml"

// Path resolves the config file path: the flag, then $DOORBRIDGE_CONFIG, then
// DefaultPath.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("DOORBRIDGE_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads path, applies environment overrides and defaults, and validates
// the result. Every error names the file and the key.
func Load(path string) (*Config, error) {
	data, err := file.Provider(path).ReadBytes()
	var raw map[string]any
	if err == nil {
		raw, err = parseYAML(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w%s", path, err, yamlHint(path, err))
	}
	over, err := env.Provider(EnvPrefix, ".", scalarEnvKey).Read()
	if err != nil {
		return nil, fmt.Errorf("%s: environment: %w", path, err)
	}
	maps.IntfaceKeysToStrings(over)
	maps.Merge(over, raw)
	listErrs := envListErrors(path, os.Environ())
	cfg, err := fromRaw(raw, path)
	if err != nil {
		nameEnvOverrides(err, envOverrides())
	}
	if len(listErrs) > 0 {
		return nil, errors.Join(append(listErrs, err)...)
	}
	if cfg != nil {
		cfg.envWarnings = envTypoWarnings(os.Environ())
	}
	return cfg, err
}

// listSections are the config sections that are lists: koanf would turn
// DOORBRIDGE_DOORS__FRONT__UNLOCK_TIME into a map over the list, and the
// error would then blame the file for a key it does not hold.
var listSections = []string{"doors", "drivers", "alarms", "power"}

// scalarEnvKey is envKey without the list sections (envListErrors refuses
// those).
func scalarEnvKey(s string) string {
	key := envKey(s)
	if underList(key) {
		return ""
	}
	return key
}

func underList(key string) bool {
	section, _, _ := strings.Cut(key, ".")
	return key != "" && slices.Contains(listSections, section)
}

// envListErrors refuses every variable that would override a list entry.
func envListErrors(path string, environ []string) []error {
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && underList(envKey(name)) {
			errs = append(errs, &Error{File: path, Key: envKey(name), Msg: "lists cannot be overridden from the environment (" + name + "): edit the file"})
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// envTypoWarnings names DOORBRIDGE_ variables that start like an override
// but lack the "__": they set nothing, and are most likely a typo
// (DOORBRIDGE_MQTT_PASSWORD). Other names (DOORBRIDGE_CONFIG, the test
// switches) are left alone.
func envTypoWarnings(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok || strings.Contains(rest, "__") {
			continue
		}
		sec := sectionOf(strings.ToLower(rest))
		if sec == "" {
			continue
		}
		want := EnvPrefix + rest[:len(sec)] + "__" + rest[len(sec)+1:]
		out = append(out, "the environment variable "+name+" sets nothing (a section and its key are separated by a double underscore: "+want+")")
	}
	slices.Sort(out)
	return out
}

// sectionOf is the config section that s (lower case, "mqtt_password")
// starts with, followed by "_"; "" if none.
func sectionOf(s string) string {
	t := reflect.TypeFor[Config]()
	best := ""
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("koanf")
		if tag != "" && strings.HasPrefix(s, tag+"_") && len(tag) > len(best) {
			best = tag
		}
	}
	return best
}

// yamlHint is a hint for a YAML syntax error: most are tabs or a key
// indented differently from its neighbours.
func yamlHint(path string, err error) string {
	if !strings.Contains(err.Error(), "yaml:") {
		return ""
	}
	if b, rerr := os.ReadFile(path); rerr == nil && strings.Contains(string(b), "\t") {
		return " (hint: the file holds a tab; YAML indents with spaces only)"
	}
	return " (hint: check the indentation: the keys of a section are indented by the same number of spaces, list items start with \"- \")"
}

// envOverrides maps each config key set from the environment to its
// variable.
func envOverrides() map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if key := envKey(name); key != "" {
			out[key] = name
		}
	}
	return out
}

// nameEnvOverrides adds the variable to every error about a key that an
// environment variable set: the file does not hold the value quoted.
func nameEnvOverrides(err error, vars map[string]string) {
	if len(vars) == 0 {
		return
	}
	if ce, ok := err.(*Error); ok {
		if v, ok := vars[ce.Key]; ok {
			ce.Msg += " (set by the environment variable " + v + ")"
		}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			nameEnvOverrides(e, vars)
		}
	}
}

// Parse loads a config from YAML bytes (for tests and fuzzing); name stands in
// for the file name in errors. No environment overrides are applied.
func Parse(name string, data []byte) (*Config, error) {
	raw, err := parseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return fromRaw(raw, name)
}

// parseYAML parses a config document into the map koanf's Load would hold
// (every key a string), without koanf.Koanf itself: its Load flattens the
// map and its Raw deep-copies it, a sixth of the time a 64-door config took
// to load, all of it before the relays' off writes at start.
func parseYAML(data []byte) (map[string]any, error) {
	raw, err := yaml.Parser().Unmarshal(data)
	if err != nil {
		return nil, err
	}
	if raw == nil { // an empty document
		raw = map[string]any{}
	}
	maps.IntfaceKeysToStrings(raw)
	return raw, nil
}

func envKey(s string) string {
	s = strings.TrimPrefix(s, EnvPrefix)
	if !strings.Contains(s, "__") {
		return "" // not a config key (e.g. DOORBRIDGE_CONFIG)
	}
	return strings.ToLower(strings.ReplaceAll(s, "__", "."))
}

// fromRaw decodes and validates raw, which it may change.
func fromRaw(raw map[string]any, name string) (*Config, error) {
	cfg, errs, bad, ok := decode(raw, name)
	if !ok {
		return nil, errors.Join(cfg.nameByID(errs)...)
	}
	cfg.File = name
	doors, _ := raw["doors"].([]any)
	for i, d := range doors {
		if m, ok := d.(map[string]any); ok && i < len(cfg.Doors) {
			_, cfg.Doors[i].unlockTimeSet = m["unlock_time"]
		}
	}
	cfg.applyDefaults()
	cfg.applyPowerDefaults()
	errs = append(errs, withoutKeys(cfg.validate(), bad)...)
	if len(errs) > 0 {
		return nil, errors.Join(cfg.nameByID(errs)...)
	}
	if cfg.Bridge.StateDir == "" {
		dir, err := DefaultStateDir(cfg.Bridge.ID, os.Getenv)
		if err != nil {
			return nil, &Error{File: name, Key: "bridge.state_dir", Msg: err.Error()}
		}
		cfg.Bridge.StateDir = dir
	}
	return cfg, nil
}

// decode decodes raw over the defaults. A value that cannot be decoded and
// an unknown key are reported, taken out of raw and the rest decoded again,
// so that validation still runs over everything else: a file's errors all
// come in one pass, not the decoding ones first. bad holds the keys of the
// values taken out (validation then sees their defaults, and its errors
// about them are dropped). ok is false when the rest cannot be decoded
// either; cfg is then as far as it was decoded.
func decode(raw map[string]any, name string) (cfg *Config, errs []error, bad map[string]bool, ok bool) {
	c := Default()
	err := decodeInto(raw, &c)
	if err == nil {
		return &c, nil, nil, true
	}
	errs = decodeErrors(err, name, "", raw, reflect.TypeOf(c), nil)
	bad = map[string]bool{}
	eachDecodeError(err, func(de *mapstructure.DecodeError, _ error) {
		if de == nil {
			return
		}
		key := de.Name()
		if keys, found := strings.CutPrefix(de.Unwrap().Error(), "has invalid keys: "); found {
			if _, isMap := lookup(raw, key).(map[string]any); !isMap {
				key = ""
			}
			for _, k := range strings.Split(keys, ", ") {
				deletePath(raw, joinKey(key, k))
			}
			return
		}
		bad[key] = true
		deletePath(raw, key)
	})
	rest := Default()
	if decodeInto(raw, &rest) != nil {
		return &c, errs, bad, false
	}
	return &rest, errs, bad, true
}

func decodeInto(raw map[string]any, out *Config) error {
	d, err := mapstructure.NewDecoder(decoderConfig(out))
	if err != nil {
		return err
	}
	return d.Decode(raw)
}

// deletePath takes the value at a mapstructure name out of raw: a map key
// is deleted, a list entry set to nil (decoded as its zero value), so that
// the other entries keep their indexes.
func deletePath(raw map[string]any, name string) {
	path := splitPath(name)
	if len(path) == 0 {
		return
	}
	var cur any = raw
	for _, p := range path[:len(path)-1] {
		switch p := p.(type) {
		case string:
			m, _ := cur.(map[string]any)
			cur = m[p]
		case int:
			l, _ := cur.([]any)
			if p < 0 || p >= len(l) {
				return
			}
			cur = l[p]
		}
	}
	switch p := path[len(path)-1].(type) {
	case string:
		if m, ok := cur.(map[string]any); ok {
			delete(m, p)
		}
	case int:
		if l, ok := cur.([]any); ok && p >= 0 && p < len(l) {
			l[p] = nil
		}
	}
}

// withoutKeys drops the errors about keys in bad or inside them.
func withoutKeys(errs []error, bad map[string]bool) []error {
	if len(bad) == 0 {
		return errs
	}
	var out []error
	for _, e := range errs {
		if ce, ok := e.(*Error); ok && under(ce.Key, bad) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func under(key string, bad map[string]bool) bool {
	for b := range bad {
		if key == b || strings.HasPrefix(key, b+".") || strings.HasPrefix(key, b+"[") {
			return true
		}
	}
	return false
}

// decoderConfig is the strict decoder of the config file. Our own
// DecoderConfig drops koanf's hooks: add the duration and text hooks back,
// and refuse unknown keys.
func decoderConfig(out any) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			RefuseBareDurations,
			refuseBareSizes,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		TagName:          "koanf",
		Result:           out,
	}
}

// decodeErrors turns a mapstructure error into one *Error per problem, keyed
// by the config path of the value (prefix, when set, is put in front of
// mapstructure's names). raw is the map that was decoded, used to quote the
// offending value, and typ the type decoded into, used to list the valid
// keys (nil when unknown); rootKeys are valid keys at the top of raw that
// typ does not hold.
func decodeErrors(err error, file, prefix string, raw map[string]any, typ reflect.Type, rootKeys []string) []error {
	var out []error
	add := func(key, format string, args ...any) {
		out = append(out, &Error{File: file, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	eachDecodeError(err, func(de *mapstructure.DecodeError, other error) {
		if de == nil {
			add(prefix, "%v", other)
			return
		}
		name, inner := de.Name(), de.Unwrap()
		if keys, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			if _, isMap := lookup(raw, name).(map[string]any); !isMap {
				name = "" // mapstructure names the root by its Go type
			}
			valid := ""
			if fields := validKeys(fieldType(typ, name)); len(fields) > 0 {
				if name == "" {
					fields = append(slices.Clone(rootKeys), fields...)
				}
				valid = " (valid: " + strings.Join(fields, ", ") + ")"
			}
			for _, k := range strings.Split(keys, ", ") {
				add(joinKey(prefix, joinKey(name, k)), "unknown key%s", valid)
			}
			return
		}
		key := joinKey(prefix, name)
		val, found := lookupOK(raw, name)
		if found && isSecretKey(key) {
			val = hiddenValue{}
		}
		switch {
		case !found:
			add(key, "%v", inner)
		case fieldType(typ, name) == reflect.TypeFor[time.Duration]() || strings.HasPrefix(inner.Error(), "time: "):
			if s, ok := val.(string); ok {
				add(key, "%q is not a duration (write a number and a unit: 500ms, 5s, 1m30s)", s)
			} else {
				add(key, "%v is not a duration: add a unit (500ms, 5s, 1m30s)", val)
			}
		case fieldType(typ, name) == byteSizeType:
			if s, ok := val.(string); ok {
				add(key, "%q is not a size (write a number and a unit: 512KB, 10MB, 1GB)", s)
			} else {
				add(key, "%v is not a size: add a unit (512KB, 10MB, 1GB)", val)
			}
		default:
			var pe *mapstructure.ParseError
			var ue *mapstructure.UnconvertibleTypeError
			switch {
			case errors.As(inner, &pe):
				add(key, "%s is not valid here: want %s", quote(val), kindName(pe.Expected.Type()))
			case errors.As(inner, &ue):
				add(key, "%s is not valid here: want %s", quote(val), kindName(ue.Expected.Type()))
			default:
				add(key, "%s: %v", quote(val), inner)
			}
		}
	})
	return out
}

// kindName says in a config writer's words what a value of type t looks like.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Pointer:
		return kindName(t.Elem())
	default:
		return "a map of keys"
	}
}

// eachDecodeError calls f, in order, with every innermost
// *mapstructure.DecodeError in err's tree, or with (nil, leaf) for a leaf
// error that is not inside one.
func eachDecodeError(err error, f func(de *mapstructure.DecodeError, other error)) {
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case *mapstructure.DecodeError:
			var nested *mapstructure.DecodeError
			if errors.As(e.Unwrap(), &nested) {
				walk(e.Unwrap())
				return
			}
			f(e, nil)
		default:
			if u := errors.Unwrap(err); u != nil {
				walk(u)
				return
			}
			f(nil, err)
		}
	}
	walk(err)
}

// unknownKeys lists the top-level keys of raw that a decoding error refused
// as unknown.
func unknownKeys(err error, raw map[string]any) []string {
	var out []string
	eachDecodeError(err, func(de *mapstructure.DecodeError, _ error) {
		if de == nil {
			return
		}
		if _, nested := lookup(raw, de.Name()).(map[string]any); nested && de.Name() != "" {
			return
		}
		if keys, ok := strings.CutPrefix(de.Unwrap().Error(), "has invalid keys: "); ok {
			out = append(out, strings.Split(keys, ", ")...)
		}
	})
	return out
}

func joinKey(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// splitPath splits a mapstructure name ("doors[0].relay") into map keys and
// list indexes.
func splitPath(name string) []any {
	var out []any
	if name == "" {
		return nil
	}
	for _, part := range strings.Split(name, ".") {
		key, rest, _ := strings.Cut(part, "[")
		out = append(out, key)
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if err != nil {
				return nil
			}
			out = append(out, n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

func lookup(raw map[string]any, name string) any {
	v, _ := lookupOK(raw, name)
	return v
}

// lookupOK returns the raw value at a mapstructure name.
func lookupOK(raw map[string]any, name string) (any, bool) {
	var cur any = raw
	for _, p := range splitPath(name) {
		switch p := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[p]; !ok {
				return nil, false
			}
		case int:
			l, ok := cur.([]any)
			if !ok || p < 0 || p >= len(l) {
				return nil, false
			}
			cur = l[p]
		}
	}
	return cur, true
}

// fieldType returns the type at a mapstructure name inside typ, or nil.
func fieldType(typ reflect.Type, name string) reflect.Type {
	for _, p := range splitPath(name) {
		for typ != nil && typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ == nil {
			return nil
		}
		switch p := p.(type) {
		case string:
			if typ.Kind() != reflect.Struct {
				return nil
			}
			var next reflect.Type
			for i := range typ.NumField() {
				if f := typ.Field(i); tagName(f) == p {
					next = f.Type
				}
			}
			typ = next
		case int:
			if typ.Kind() != reflect.Slice && typ.Kind() != reflect.Array {
				return nil
			}
			typ = typ.Elem()
		}
	}
	return typ
}

// validKeys lists the config keys of a struct type, in declaration order.
func validKeys(typ reflect.Type) []string {
	for typ != nil && typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == nil || typ.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range typ.NumField() {
		if k := tagName(typ.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// tagName is a field's config key: its koanf tag, "" for fields that are not
// keys ("-", ",remain", unexported).
func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func (c *Config) applyDefaults() {
	if len(c.Alarms) == 0 {
		c.Alarms = []Alarm{DefaultAlarm(c.MQTT.BaseTopic)}
	}
	c.applyAlarmDefaults()
	for i := range c.Doors {
		if c.Doors[i].UnlockTime == 0 && !c.Doors[i].unlockTimeSet {
			c.Doors[i].UnlockTime = DefaultUnlockTime
		}
		if c.Doors[i].Name == "" {
			c.Doors[i].Name = c.Doors[i].ID
		}
		c.Doors[i].Area = strings.TrimSpace(c.Doors[i].Area)
		if c.Doors[i].RexTime == 0 {
			c.Doors[i].RexTime = DefaultRexTime
		}
		if c.Doors[i].HeldOpenTime == 0 {
			c.Doors[i].HeldOpenTime = DefaultHeldOpenTime
		}
	}
}
