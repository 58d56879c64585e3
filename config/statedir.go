package config

import (
	"errors"
	"path/filepath"
	"strings"
)

// The state directory (bridge.state_dir) holds what must survive a restart
// and a power cut (R23): the fire release latch, lockdown, the battery
// budget, code lockouts, the last release drill. Left empty in the file it
// is not "nowhere": every way of running doorbridge gets one.

// DefaultStateDir is where state is kept when bridge.state_dir is empty,
// looked up with getenv (os.Getenv): systemd's $STATE_DIRECTORY (the unit's
// StateDirectory=, /var/lib/doorbridge; the Docker image sets it to its
// /data volume), else $XDG_STATE_HOME/doorbridge/<id>, else
// $HOME/.local/state/doorbridge/<id> (the demo run by hand). Per bridge id
// outside systemd, so that two configs of one user never share a latch.
func DefaultStateDir(id string, getenv func(string) string) (string, error) {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); filepath.IsAbs(d) {
		return d, nil
	}
	if x := getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "doorbridge", id), nil
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "doorbridge", id), nil
	}
	return "", errors.New("empty, and no default: none of $STATE_DIRECTORY, $XDG_STATE_HOME, $HOME is set; " +
		"set it to a directory that survives a reboot (e.g. /var/lib/doorbridge): the fire release latch is kept there")
}

func (c *Config) validateStateDir(v *validator) {
	if d := c.Bridge.StateDir; d != "" && !filepath.IsAbs(d) {
		v.add("bridge.state_dir", "%q is relative: it would depend on the directory doorbridge starts in; give an absolute path (e.g. /var/lib/doorbridge), or leave it empty for the default", d)
	}
}
