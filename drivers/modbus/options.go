package modbus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
)

// Defaults of the options.
const (
	DefaultUnitID  = 1
	DefaultSpeed   = 9600
	DefaultTimeout = 250 * time.Millisecond
	// MaxTimeout keeps a write to a board that stopped answering well
	// inside the 1 s release budget: the write of its own doors' off
	// gives up then, and is retried (R22). It is also below the bridge's
	// relay write deadline (300 ms), so that a slow board's write fails
	// rather than completing after its door was declared JAMMED, which
	// made the door cycle between powered and released.
	MaxTimeout          = 250 * time.Millisecond
	DefaultPollInterval = 100 * time.Millisecond
)

// Options are the modbus driver's config keys.
type Options struct {
	// URL is "tcp://host:port" or "rtu:///dev/ttyUSB0".
	URL string `koanf:"url"`
	// UnitID is the Modbus unit (slave) id, 1-255.
	UnitID int `koanf:"unit_id"`
	// Speed is the serial baud rate (RTU only).
	Speed int `koanf:"speed"`
	// Timeout bounds each request, and how long Set may block.
	Timeout time.Duration `koanf:"timeout"`
	// PollInterval is the discrete input polling period.
	PollInterval time.Duration `koanf:"poll_interval"`
}

func init() {
	drivers.Register("modbus", FromConfig)
}

// FromConfig is the drivers.Factory of type "modbus": it decodes and
// validates options without opening the link.
func FromConfig(raw map[string]any) (drivers.Spec, error) {
	o := Options{UnitID: DefaultUnitID, Speed: DefaultSpeed, Timeout: DefaultTimeout, PollInterval: DefaultPollInterval}
	if err := drivers.DecodeOptions(raw, &o); err != nil {
		return nil, fmt.Errorf("modbus: %w", err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// Validate checks option values.
func (o Options) Validate() error {
	if err := validateURL(o.URL); err != nil {
		return fmt.Errorf("modbus: url %q: %w", o.URL, err)
	}
	switch {
	case o.UnitID < 1 || o.UnitID > 255:
		return fmt.Errorf("modbus: %s: unit_id %d: want 1-255", o.URL, o.UnitID)
	case o.Speed <= 0:
		return fmt.Errorf("modbus: %s: speed %d: want a baud rate", o.URL, o.Speed)
	case o.Timeout < 10*time.Millisecond || o.Timeout > MaxTimeout:
		return fmt.Errorf("modbus: %s: timeout %s: want 10ms to %s (a door's release must fit in the 1 s budget)", o.URL, o.Timeout, MaxTimeout)
	case o.PollInterval < 10*time.Millisecond || o.PollInterval > time.Minute:
		return fmt.Errorf("modbus: %s: poll_interval %s: want 10ms to 1m", o.URL, o.PollInterval)
	}
	return nil
}

func validateURL(u string) error {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return errors.New(`want "tcp://host:port" or "rtu:///dev/ttyUSB0"`)
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || port == "" {
			return errors.New("want tcp://host:port")
		}
	case "rtu":
		if !strings.HasPrefix(rest, "/") {
			return errors.New("want rtu:// and a device path, e.g. rtu:///dev/ttyUSB0")
		}
	default:
		return fmt.Errorf("scheme %q: want tcp or rtu", scheme)
	}
	return nil
}

// Open implements drivers.Spec: it connects to the board.
func (o Options) Open(id string, log *slog.Logger) (drivers.Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return New(o, log)
}

// KeepsLevelOnExit implements drivers.LevelKeeper: a Modbus board keeps its
// coils when doorbridge dies.
func (o Options) KeepsLevelOnExit() bool { return true }

// CheckChannel implements drivers.ChannelChecker: a relay is a coil, an input
// a discrete input, each a 0-based address 0-65535. Manuals often number
// from 1 in the 0xxxx (coil) and 1xxxx (discrete input) notation: a coil
// written with leading zeros ("00001") and a discrete input 10001-19999 are
// that notation, refused with the address they mean.
func (o Options) CheckChannel(channel string, output bool) error {
	what, table := "discrete input", 10001
	if output {
		what, table = "coil", 1
	}
	hint := fmt.Sprintf("(the board's manual may count from 1: %s 1 is address 0)", what)
	n, err := parseAddr(channel)
	if err != nil {
		return fmt.Errorf("modbus: %s %q: want a 0-based %s address 0-65535 %s", what, channel, what, hint)
	}
	notation := len(channel) > 1 && channel[0] == '0'
	if !output && n >= 10001 && n <= 19999 {
		notation = true
	}
	if !notation {
		return nil
	}
	// Only a number of the manual's own table has an address to suggest:
	// "00" is no coil, "00005" no discrete input (that table starts at
	// 10001).
	if addr := int(n) - table; addr >= 0 && (output || n >= 10001) {
		return fmt.Errorf("modbus: %s %q: looks like the manual's numbering (%d is %s %d, address %d): want the 0-based address, e.g. \"%d\" %s", what, channel, n, what, addr+1, addr, addr, hint)
	}
	return fmt.Errorf("modbus: %s %q: leading zeros: want the 0-based %s address as a plain number, e.g. \"%d\" %s", what, channel, what, n, hint)
}

// Probe implements drivers.Prober: an RTU device must exist. A TCP board is
// not contacted.
func (o Options) Probe([]string) error {
	dev, ok := strings.CutPrefix(o.URL, "rtu://")
	if !ok {
		return fmt.Errorf("modbus: %s: a network board is reached only by the bridge: %w", o.URL, drivers.ErrNotProbed)
	}
	if _, err := os.Stat(dev); err != nil {
		return fmt.Errorf("modbus: %s: serial device: %w (%w)", o.URL, err, drivers.ErrNoHardware)
	}
	return nil
}

var (
	_ drivers.Spec           = Options{}
	_ drivers.LevelKeeper    = Options{}
	_ drivers.ChannelChecker = Options{}
	_ drivers.PullChecker    = Options{}
	_ drivers.Prober         = Options{}
)

// Pulls implements drivers.PullChecker: a board's inputs have fixed wiring,
// nothing to configure.
func (o Options) Pulls() []string { return []string{"none"} }
