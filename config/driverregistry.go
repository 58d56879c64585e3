package config

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

// DriverRegistry is what validation needs of the driver registry: the known
// driver types, and a decoder of a type's options into its spec. Package
// drivers installs itself in its init, so that config (and policy and
// discovery, which import it) does not depend on the drivers.
type DriverRegistry interface {
	Types() []string
	Decode(typ string, options map[string]any) (any, error)
}

var driverRegistry DriverRegistry = noDrivers{}

// SetDriverRegistry installs the driver registry (from package drivers'
// init: call it before any Validate).
func SetDriverRegistry(r DriverRegistry) { driverRegistry = r }

// noDrivers stands in until drivers is linked: every type is unknown.
type noDrivers struct{}

func (noDrivers) Types() []string { return nil }

func (noDrivers) Decode(typ string, _ map[string]any) (any, error) {
	return nil, fmt.Errorf("unknown driver type %q (no drivers registered)", typ)
}

// channelChecker is drivers.ChannelChecker: a spec that can tell, without
// the hardware, that a channel cannot exist.
type channelChecker interface {
	CheckChannel(channel string, output bool) error
}

var durationType = reflect.TypeFor[time.Duration]()

// RefuseBareDurations is a decode hook that stops a number without a unit
// from becoming nanoseconds: "debounce: 1" would otherwise be 1ns. Zero is
// unambiguous and allowed. Driver option decoders (drivers.DecodeOptions) use it too.
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

// pullChecker is drivers.PullChecker: the pulls a driver's inputs take.
type pullChecker interface {
	Pulls() []string
}
