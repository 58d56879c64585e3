package discovery_test

import (
	"fmt"
	"testing"

	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
	_ "github.com/doorbridge/doorbridge/drivers/sim" // registers "sim" for Validate
)

// testHash stands in for a bcrypt hash: discovery only asks whether a door
// has one (cfg.EffectiveCodeHash).
const testHash = "$2a$10$abcdefghijklmnopqrstuuM2Fh5VbV0G0rLq1nYdM3kq2gq8QmC1K"

// door is a door on the test relay bank; name, unlock time and relay
// channel are filled in by newConfig.
func door(id, failMode, codeHash string) config.Door {
	return config.Door{ID: id, FailMode: failMode, CodeHash: codeHash}
}

// newConfig builds a valid config the way the loader would: defaults, one
// sim driver, then the doors with their defaults applied.
func newConfig(t testing.TB, doors ...config.Door) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Drivers = append(cfg.Drivers, config.Driver{ID: "relays", Type: "sim", Options: map[string]any{}})
	for i, d := range doors {
		if d.Name == "" {
			d.Name = d.ID
		}
		if d.UnlockTime == 0 {
			d.UnlockTime = config.DefaultUnlockTime
		}
		d.Relay = config.Line{Driver: "relays", Channel: fmt.Sprint(i)}
		cfg.Doors = append(cfg.Doors, d)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config is invalid: %v", err)
	}
	return &cfg
}

// goldenConfig has one fail-safe door without a code, one fail-secure
// door with its own code, and a fail-safe door with every input; only the
// first has an area.
func goldenConfig(t testing.TB) *config.Config {
	front := door("front", config.FailSafe, "")
	front.Name = "Front door"
	front.Area = "Hallway" // back and side have none: suggested_area is left out
	back := door("back", config.FailSecure, testHash)
	back.Name = "Back door"
	cfg := newConfig(t, front, back, withInputs(door("side", config.FailSafe, "")))
	cfg.HTTP.Console = config.ConsoleReadOnly      // the device pages link to the console,
	cfg.HTTP.ConsoleURL = "http://127.0.0.1:9180/" // by console_url: the listener is loopback
	return cfg
}

// withInputs gives d a contact, an exit button and a lock sense on the
// test relay bank's input channels.
func withInputs(d config.Door) config.Door {
	d.Contact = &config.Line{Driver: "relays", Channel: "in-" + d.ID + "-contact"}
	d.Rex = &config.Line{Driver: "relays", Channel: "in-" + d.ID + "-rex"}
	d.LockSense = &config.Line{Driver: "relays", Channel: "in-" + d.ID + "-lock"}
	return d
}

var testInfo = discovery.Info{Version: "1.2.3", SupportURL: "https://github.com/doorbridge/doorbridge"}
