package drivers

import (
	"fmt"

	"github.com/doorbridge/doorbridge/config"
)

// The one way to open a door's lines, shared by the bridge and
// `doorbridge test-door`, so that what an installer tests is what the
// bridge drives.

// OpenRelay opens relay line r of drv at its off level (RelayLevel of
// lock power off: high on an active-low board). That is the line's very
// first level, so opening a relay never blips a lock (de-energize to trip).
func OpenRelay(drv Driver, r config.Line) (Output, error) {
	out, err := drv.OpenOutput(r.Channel, RelayLevel(r, false))
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", r.Name(), err)
	}
	return out, nil
}

// RelayLevel is the level of relay line r for lock power p: high for
// power on, inverted on an active-low board.
func RelayLevel(r config.Line, p bool) bool { return p != r.ActiveLow }

// OpenInput opens input line l of drv with its electrical options.
func OpenInput(drv Driver, l config.Line) (Input, error) {
	opener, ok := drv.(InputOpener)
	if !ok {
		return nil, fmt.Errorf("driver %q has no input lines", l.Driver)
	}
	in, err := opener.OpenInput(l.Channel, InputOptions{Pull: l.Pull})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.Name(), err)
	}
	return in, nil
}
