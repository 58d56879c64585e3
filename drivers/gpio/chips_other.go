//go:build !linux

package gpio

import (
	"errors"
	"fmt"
	"log/slog"
)

// openChips fails: the GPIO character device exists only on Linux.
func openChips(chipOpt, consumer string, log *slog.Logger) (Lines, error) {
	return nil, fmt.Errorf("gpio: chip %q: %w", chipOpt, errors.New("the GPIO character device needs Linux"))
}
