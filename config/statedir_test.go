package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// An empty bridge.state_dir is never "nowhere" (R23): systemd's
// $STATE_DIRECTORY (and the Docker image's), else the user's state home,
// per bridge id.
func TestDefaultStateDir(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STATE_DIRECTORY": "/var/lib/doorbridge", "HOME": "/home/u"}, "/var/lib/doorbridge"},
		{map[string]string{"STATE_DIRECTORY": "/var/lib/doorbridge:/var/lib/other"}, "/var/lib/doorbridge"},
		{map[string]string{"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}, "/x/state/doorbridge/demo"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/doorbridge/demo"},
		{map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/doorbridge/demo"},
	} {
		got, err := config.DefaultStateDir("demo", func(k string) string { return c.env[k] })
		if got != c.want || err != nil {
			t.Errorf("env %v: %q, %v; want %q", c.env, got, err, c.want)
		}
	}
	if got, err := config.DefaultStateDir("demo", func(string) string { return "" }); err == nil {
		t.Errorf("no environment: %q and no error", got)
	}
}

// Load fills an empty state_dir in; the demo config relies on it.
func TestLoadDefaultsStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", home)
	cfg, err := config.Load(filepath.Join("..", "configs", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".local", "state", "doorbridge", "demo"); cfg.Bridge.StateDir != want {
		t.Errorf("demo state_dir %q; want %q", cfg.Bridge.StateDir, want)
	}
	t.Setenv("HOME", "")
	_, err = config.Load(filepath.Join("..", "configs", "demo.yaml"))
	if err == nil || !strings.Contains(err.Error(), "bridge.state_dir: empty, and no default") {
		t.Errorf("no default possible: %v; want a bridge.state_dir error", err)
	}
}
