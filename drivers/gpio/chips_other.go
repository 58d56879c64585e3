//go:build !linux

package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
)

// openChips fails: the GPIO character device exists only on Linux.
func openChips(chipOpt, consumer string, log *slog.Logger) (Lines, error) {
	return nil, fmt.Errorf("gpio: chip %q: %w", chipOpt, errors.New("the GPIO character device needs Linux"))
}

// Probe implements drivers.Prober: there is no GPIO character device here.
func (o Options) Probe([]string) error {
	return fmt.Errorf("gpio: the GPIO character device needs Linux: %w", drivers.ErrNoHardware)
}

// monotonic is unknown here: edges are dated when handled.
func monotonic() time.Duration { return 0 }
