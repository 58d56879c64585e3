// Package hwwatchdog drives a Linux watchdog device (/dev/watchdog) through
// its plain file interface, without ioctls: opening the device arms it, any
// write pings it, and writing the magic character 'V' just before closing
// disarms it (unless the driver was built with nowayout). Closing it any
// other way, or dying, leaves it armed: the machine resets when its timeout
// runs out, which drops every relay line held by the bridge.
//
// The bridge pings it only from its control loop, and only while the loop
// completes its cycles on time (bridge/liveness.go).
package hwwatchdog

import (
	"fmt"
	"os"
)

// Device is an open watchdog device.
type Device struct {
	f    *os.File
	path string
}

// Open opens (and so arms) the watchdog device at path.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("hwwatchdog: %w", err)
	}
	return &Device{f: f, path: path}, nil
}

// Path is the device's path.
func (d *Device) Path() string { return d.path }

// ping is any byte but the magic 'V'.
var ping = []byte{'.'}

// Ping restarts the device's countdown.
func (d *Device) Ping() error {
	if _, err := d.f.Write(ping); err != nil {
		return fmt.Errorf("hwwatchdog: ping %s: %w", d.path, err)
	}
	return nil
}

// MagicClose writes 'V' and closes the device, which disarms it: only for a
// clean shutdown, after every relay is off.
func (d *Device) MagicClose() error {
	_, werr := d.f.Write([]byte{'V'})
	cerr := d.f.Close()
	if werr != nil {
		return fmt.Errorf("hwwatchdog: magic close %s: %w", d.path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("hwwatchdog: close %s: %w", d.path, cerr)
	}
	return nil
}

// Close closes the device without the magic character: it stays armed and
// resets the machine unless the bridge (restarted by systemd) opens it again
// in time.
func (d *Device) Close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("hwwatchdog: close %s: %w", d.path, err)
	}
	return nil
}
