package drivers

import (
	"fmt"

	"github.com/doorbridge/doorbridge/config"
)

// The one way to open a door's lines, shared by the bridge and
// `doorbridge test-door`, so that what an installer tests is what the
// bridge drives.

// OpenRelay opens relay line r of drv at its off level (lock power off:
// high on an active-low board). That is the line's very first level, so
// opening a relay never blips a lock (de-energize to trip).
func OpenRelay(drv Driver, r config.Line) (Output, error) {
	out, err := drv.OpenOutput(r.Channel, r.ActiveLow)
	if err != nil {
		return nil, fmt.Errorf("relay %s/%s: %w", r.Driver, r.Channel, err)
	}
	return out, nil
}

// OpenInput opens input line l of drv with its electrical options.
func OpenInput(drv Driver, l config.Line) (Input, error) {
	opener, ok := drv.(InputOpener)
	if !ok {
		return nil, fmt.Errorf("driver %q has no input lines", l.Driver)
	}
	in, err := opener.OpenInput(l.Channel, InputOptions{Pull: l.Pull})
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", l.Driver, l.Channel, err)
	}
	return in, nil
}
