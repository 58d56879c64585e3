package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
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
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := k.Load(env.Provider(EnvPrefix, ".", envKey), nil); err != nil {
		return nil, fmt.Errorf("%s: environment: %w", path, err)
	}
	return fromKoanf(k, path)
}

// Parse loads a config from YAML bytes (for tests and fuzzing); name stands in
// for the file name in errors. No environment overrides are applied.
func Parse(name string, data []byte) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawBytes(data), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return fromKoanf(k, name)
}

func envKey(s string) string {
	s = strings.TrimPrefix(s, EnvPrefix)
	if !strings.Contains(s, "__") {
		return "" // not a config key (e.g. DOORBRIDGE_CONFIG)
	}
	return strings.ToLower(strings.ReplaceAll(s, "__", "."))
}

func fromKoanf(k *koanf.Koanf, name string) (*Config, error) {
	cfg := Default()
	// Our own DecoderConfig drops koanf's hooks: add the duration and text
	// hooks back, and refuse unknown keys.
	err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		TagName:          "koanf",
	}})
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, cleanDecodeError(err))
	}
	cfg.File = name
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// cleanDecodeError flattens mapstructure's multi-line error into one line per
// problem, without its "N error(s) decoding:" preamble.
func cleanDecodeError(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l == "" || strings.HasSuffix(l, "decoding:") {
			continue
		}
		if strings.Contains(l, "has invalid keys: ") {
			l = strings.Replace(l, "has invalid keys: ", "has unknown keys: ", 1)
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return err.Error()
	}
	return strings.Join(lines, "; ")
}

func (c *Config) applyDefaults() {
	if len(c.Alarms) == 0 {
		c.Alarms = []Alarm{DefaultAlarm(c.MQTT.BaseTopic)}
	}
	for i := range c.Alarms {
		if c.Alarms[i].PayloadOn == "" {
			c.Alarms[i].PayloadOn = "ON"
		}
		if c.Alarms[i].PayloadOff == "" {
			c.Alarms[i].PayloadOff = "OFF"
		}
	}
	for i := range c.Doors {
		if c.Doors[i].UnlockTime == 0 {
			c.Doors[i].UnlockTime = DefaultUnlockTime
		}
		if c.Doors[i].Name == "" {
			c.Doors[i].Name = c.Doors[i].ID
		}
	}
}

// rawBytes is a koanf provider for in-memory YAML.
type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error)    { return b, nil }
func (b rawBytes) Read() (map[string]any, error) { return nil, errors.New("not supported") }
