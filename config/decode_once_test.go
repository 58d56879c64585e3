package config

import "testing"

// countingRegistry counts the decodes of driver options.
type countingRegistry struct {
	DriverRegistry
	decodes int
}

func (r *countingRegistry) Decode(typ string, options map[string]any) (any, error) {
	r.decodes++
	return r.DriverRegistry.Decode(typ, options)
}

// Validation decodes a driver's options once for the driver and once for
// all its lines, not once per line: with a decode per line, a 256-door
// config took milliseconds more to load, before every start's off writes.
func TestLoadDecodesDriverOptionsOncePerDriver(t *testing.T) {
	orig := driverRegistry
	reg := &countingRegistry{DriverRegistry: orig}
	driverRegistry = reg // no test of this package runs in parallel
	defer func() { driverRegistry = orig }()
	if _, err := Load(benchConfig(t, 64)); err != nil {
		t.Fatal(err)
	}
	if reg.decodes > 2 {
		t.Errorf("64 doors on one driver: its options were decoded %d times, want at most 2", reg.decodes)
	}
}
