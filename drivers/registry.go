package drivers

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-viper/mapstructure/v2"

	"github.com/doorbridge/doorbridge/config"
)

// Factory decodes and validates the options of one driver config entry (the
// keys other than id and type). It must reject unknown keys.
type Factory func(options map[string]any) (Spec, error)

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// The registry validates driver options for config: config asks through a
// small interface and so does not depend on drivers (nor do policy and
// discovery, which import config).
func init() { config.SetDriverRegistry(configView{}) }

type configView struct{}

func (configView) Types() []string { return Types() }

func (configView) Decode(typ string, options map[string]any) (any, error) {
	return Decode(typ, options)
}

// Register adds a driver type. It panics on a duplicate: two drivers claiming
// one config type is a programming error.
func Register(typ string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("drivers: type %q registered twice", typ))
	}
	registry[typ] = f
}

// Types lists the registered driver types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Decode builds the Spec for a config entry of type typ.
func Decode(typ string, options map[string]any) (Spec, error) {
	mu.RLock()
	f, ok := registry[typ]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown driver type %q (known: %s)", typ, strings.Join(Types(), ", "))
	}
	return f(options)
}

// DecodeOptions decodes options into out (a pointer to a struct with
// mapstructure tags), rejecting unknown keys and accepting Go durations
// ("1500ms"). Drivers call it from their Factory.
func DecodeOptions(options map[string]any, out any) error {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			config.RefuseBareDurations,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		Result:           out,
		TagName:          "koanf",
	})
	if err != nil {
		return err
	}
	return d.Decode(options)
}
