package drivers

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// Factory decodes and validates the options of one driver config entry (the
// keys other than id and type). It must reject unknown keys.
type Factory func(options map[string]any) (Spec, error)

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

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
			RefuseBareDurations,
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

var durationType = reflect.TypeFor[time.Duration]()

// RefuseBareDurations is a decode hook that stops a number without a unit
// from becoming nanoseconds: "debounce: 1" would otherwise be 1ns. Zero is
// unambiguous and allowed. The config loader uses it too.
func RefuseBareDurations(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if !reflect.ValueOf(data).IsZero() {
			return nil, errors.New("number without a unit")
		}
	}
	return data, nil
}
