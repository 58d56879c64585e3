package config_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// Door.Inputs is the one list of a door's inputs: every *Line field of Door
// is on it, named by its key, in field order. An input added to Door but not
// to the list fails here; one added to the list reaches validation (below),
// check-config, the bridge and test-door (their tests walk the list).
func TestInputsListEveryLineField(t *testing.T) {
	var d config.Door
	v := reflect.ValueOf(&d).Elem()
	var keys []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type != reflect.TypeFor[*config.Line]() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		keys = append(keys, key)
		v.Field(i).Set(reflect.ValueOf(&config.Line{Driver: "io", Channel: key}))
	}
	var names []string
	for _, in := range d.Inputs() {
		names = append(names, in.Name)
		if in.Line == nil || in.Line.Channel != in.Name {
			t.Errorf("input %s: line %+v, want the door's %s field", in.Name, in.Line, in.Name)
		}
	}
	if !slices.Equal(names, keys) {
		t.Errorf("Door.Inputs() names %v; Door's input keys are %v", names, keys)
	}
	if !d.HasInputs() || (&config.Door{}).HasInputs() {
		t.Errorf("HasInputs: %v with every input, %v with none", d.HasInputs(), (&config.Door{}).HasInputs())
	}
}

// allInputsYAML is a door "front" with every input of Door.Inputs on driver
// drv, channel named after the input.
func allInputsYAML(drv string) string {
	var b strings.Builder
	b.WriteString("doors:\n  - id: front\n    fail_mode: fail_safe\n    relay: {driver: sim, channel: \"0\"}\n")
	for _, in := range (&config.Door{}).Inputs() {
		fmt.Fprintf(&b, "    %s: {driver: %s, channel: %s}\n", in.Name, drv, in.Name)
	}
	return b.String()
}

// Every input on the list decodes from its key and is validated as a line.
func TestEveryInputDecodedAndValidated(t *testing.T) {
	cfg, err := config.Parse("inline.yaml", []byte("drivers: [{id: sim, type: sim}]\n"+allInputsYAML("sim")))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range cfg.Door("front").Inputs() {
		if in.Line == nil || *in.Line != (config.Line{Driver: "sim", Channel: in.Name}) {
			t.Errorf("input %s decoded as %+v", in.Name, in.Line)
		}
	}
	_, err = config.Parse("inline.yaml", []byte("drivers: [{id: sim, type: sim}]\n"+allInputsYAML("nosuch")))
	for _, in := range (&config.Door{}).Inputs() {
		want := fmt.Sprintf(`doors.front.%s.driver: unknown driver "nosuch" (configured: sim)`, in.Name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("input %s on an unknown driver: error %v, want %q", in.Name, err, want)
		}
	}
}
