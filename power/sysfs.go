package power

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysfs is a Linux power supply seen through sysfs, such as the mains adapter
// at /sys/class/power_supply/AC. It reads the supply's online attribute.
type Sysfs struct {
	path string // the supply's directory
	file string // path/online
}

// NewSysfs returns the source for the power-supply directory path, e.g.
// "/sys/class/power_supply/AC". The directory is not read until Poll.
func NewSysfs(path string) *Sysfs {
	return &Sysfs{path: path, file: filepath.Join(path, "online")}
}

// Name is "sysfs:" followed by the supply's directory.
func (s *Sysfs) Name() string { return "sysfs:" + s.path }

// Poll reads the online attribute: "1" (or "2", a USB supply that is online
// and programmable, per the kernel's sysfs-class-power ABI) means mains power
// is present, "0" that it is lost. Anything else, or a file that cannot be
// read, is an error naming the file.
func (s *Sysfs) Poll(ctx context.Context) (lost bool, detail string, err error) {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return false, "", fmt.Errorf("power: sysfs: %w", err)
	}
	v := strings.TrimSpace(string(b))
	detail = fmt.Sprintf("online %q", v)
	switch v {
	case "1", "2":
		return false, detail, nil
	case "0":
		return true, detail, nil
	}
	return false, "", fmt.Errorf("power: sysfs: %s: unexpected value %.32q (want 0 or 1)", s.file, v)
}

var _ Source = (*Sysfs)(nil)
