package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbridge/doorbridge/config"
	_ "github.com/doorbridge/doorbridge/drivers/all"
)

// FuzzConfigParse: config.Parse never panics, every error names the file,
// and a config it accepts keeps the safety rules validation promises.
// Seeds: the demo, the reference, the examples and every bad-*.yaml fixture.
// (go test -fuzz FuzzConfigParse ./config)
func FuzzConfigParse(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"../configs/demo.yaml", "../configs/reference.yaml", "../configs/examples/*.yaml", "../configs/testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) < 3 {
		f.Fatalf("seed corpus: only %d files found", len(seeds))
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	const name = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(name, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
		if len(cfg.Doors) == 0 {
			t.Fatalf("Parse accepted a config without doors")
		}
		w := cfg.Watchdog
		if w.HeartbeatTimeout > 10*time.Second || w.HeartbeatTimeout <= w.HeartbeatInterval {
			t.Fatalf("accepted heartbeat_timeout %v (interval %v)", w.HeartbeatTimeout, w.HeartbeatInterval)
		}
		for _, d := range cfg.Doors {
			if d.FailMode != config.FailSafe && d.FailMode != config.FailSecure {
				t.Fatalf("door %q: accepted fail_mode %q", d.ID, d.FailMode)
			}
			if d.Egress && d.FailMode == config.FailSecure && !d.MechanicalEgress {
				t.Fatalf("door %q: accepted a fail-secure egress door without mechanical_egress (R19)", d.ID)
			}
			if d.UnlockTime != 0 && (d.UnlockTime < config.MinUnlockTime || d.UnlockTime > config.MaxUnlockTime) {
				t.Fatalf("door %q: accepted unlock_time %v (R13: 1-30 s)", d.ID, d.UnlockTime)
			}
			if !d.ReleasesOnPowerLoss() && d.FailMode != config.FailSafe {
				t.Fatalf("door %q: accepted power_release false on a %s door", d.ID, d.FailMode)
			}
		}
	})
}
