package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// flattenDefaults returns every scalar key of Default() with its value as
// the README writes it.
func flattenDefaults() map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("koanf"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fv := v.Field(i)
			switch {
			case f.Type == reflect.TypeFor[time.Duration]():
				out[key] = fv.Interface().(time.Duration).String()
			case fv.Kind() == reflect.Struct:
				walk(key, fv)
			case fv.Kind() == reflect.String:
				if fv.String() == "" {
					out[key] = `""`
				} else {
					out[key] = fv.String()
				}
			case fv.Kind() == reflect.Bool, fv.Kind() == reflect.Int:
				out[key] = fmt.Sprint(fv.Interface())
			}
		}
	}
	walk("", reflect.ValueOf(Default()))
	return out
}

// TestREADMEReferenceDefaults keeps the README's reference table in step with
// Default(), the one source of defaults.
func TestREADMEReferenceDefaults(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defaults := flattenDefaults()
	checked := 0
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		key := strings.Trim(strings.TrimSpace(cells[1]), "`")
		want, ok := defaults[key]
		if !ok {
			continue
		}
		got := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if got != want {
			t.Errorf("README says %s defaults to %q; config.Default() has %q", key, got, want)
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d README rows matched config keys; is the reference table still there?", checked)
	}
}
