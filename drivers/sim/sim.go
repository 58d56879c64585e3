// Package sim is a simulated relay bank: lines live in memory and, when
// state_file is set, are mirrored to a JSON file ({"0": true, "1": false},
// true = high) written atomically at start and on every change, so the demo
// and black-box tests can watch the relays without hardware.
//
// Inputs (door contacts, exit buttons, lock sensors, a power-good line) are
// set with SetInput, or read from inputs_file: a JSON object of the same
// shape, read again whenever it changes, so the demo and black-box tests can
// open a door or press an exit button without hardware.
package sim

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/doorbridge/doorbridge/drivers"
	"github.com/doorbridge/doorbridge/internal/atomicfile"
)

// Options are the sim driver's config keys.
type Options struct {
	// StateFile, when set, mirrors every output line's level as JSON.
	StateFile string `koanf:"state_file"`
	// InputsFile, when set, holds the input levels as JSON ({"5": true},
	// true = high). It is polled every 20ms and read again when it changes.
	// While it is set it is the only source of input levels: a channel it
	// does not list, or a file that cannot be read, makes Read fail (an
	// unknown input), never a guessed level.
	InputsFile string `koanf:"inputs_file"`
	// FaultsFile, when set, holds output faults as JSON, from channel to
	// fault ({"3": {"delay": "1s"}}, {"3": {"hang": true}} or
	// {"3": {"error": "i2c: no ack"}}), read again whenever it changes. A
	// missing file or {} is no fault; a bad file changes nothing.
	FaultsFile string `koanf:"faults_file"`

	// CreateInputsFile: when InputsFile is missing at start, write it with
	// every input the bridge opens at low (a closed door, a released
	// button) instead of leaving them unknown: the demo's first run.
	CreateInputsFile bool `koanf:"create_inputs_file"`
}

func init() {
	drivers.Register("sim", func(raw map[string]any) (drivers.Spec, error) {
		var o Options
		if err := drivers.DecodeOptions(raw, &o); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		// A faults file with bad content is a config error; one that is
		// not there (yet) is no fault.
		if o.FaultsFile != "" {
			if raw, err := os.ReadFile(o.FaultsFile); err == nil {
				if _, err := ParseFaults(raw); err != nil {
					return nil, fmt.Errorf("sim: faults_file %s: %w", o.FaultsFile, err)
				}
			}
		}
		return o, nil
	})
}

// Open implements drivers.Spec.
// A faults file that is there but bad fails the open, naming the file and
// the channel.
func (o Options) Open(id string, log *slog.Logger) (drivers.Driver, error) {
	if o.FaultsFile != "" {
		if _, _, err := ReadFaultsFile(o.FaultsFile); err != nil {
			return nil, err
		}
	}
	d := newDriver(o, log)
	log.Info("sim driver ready", "state_file", o.StateFile, "inputs_file", o.InputsFile, "faults_file", o.FaultsFile)
	return d, nil
}

// Driver is a simulated bank of lines.
type Driver struct {
	opts Options

	fileMu sync.Mutex // serialises state file writes, taken before mu
	mu     sync.Mutex
	levels map[string]bool
	dirty  bool
	// keys are the open channels' JSON object keys, sorted as
	// json.Marshal sorts a map's: the state file is built from them
	// without marshalling the map again on every change, which costs
	// two allocations per line (a 256-line bank: 500 per relay change).
	keys []stateKey
	// history records every level each line was set to, in order, for tests
	// that check that a line never glitched.
	history map[string][]bool

	in     inputs
	faults faults
}

// New returns a sim driver with typed options (what tests call). With an
// inputs file it reads the file once and starts polling it; Close stops.
// With a faults file, a bad one is logged and no fault is in force.
func New(o Options) *Driver { return newDriver(o, slog.Default()) }

func newDriver(o Options, log *slog.Logger) *Driver {
	d := &Driver{opts: o, levels: map[string]bool{}, history: map[string][]bool{}}
	d.in.init(o.InputsFile, o.CreateInputsFile)
	d.faults.init(o.FaultsFile, log.Warn)
	return d
}

// SetFault puts fault f on output channel ch, as a faults file would.
func (d *Driver) SetFault(ch string, f Fault) { d.faults.set(ch, &f) }

// Fault returns the fault in force on channel ch (zero: none).
func (d *Driver) Fault(ch string) Fault { return d.faults.get(ch) }

// ClearFault removes channel ch's fault: a hung write goes on.
func (d *Driver) ClearFault(ch string) { d.faults.set(ch, nil) }

// OpenOutput implements drivers.Driver. The channel's fault applies to the
// write of the initial level, as on a board that writes it at once.
func (d *Driver) OpenOutput(channel string, initial bool) (drivers.Output, error) {
	if err := d.faults.wait(channel); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, busy := d.levels[channel]; busy || d.in.isOpen(channel) {
		return nil, fmt.Errorf("sim: channel %q: %w", channel, drivers.ErrChannelBusy)
	}
	d.levels[channel] = initial
	d.history[channel] = []bool{initial}
	d.addKey(channel)
	// The file is written by the next Flush (the bridge flushes once every
	// output is open), not once per line: n lines cost one write, not n.
	d.dirty = true
	return &line{d: d, ch: channel}, nil
}

// Flush implements drivers.Flusher: it writes the state file if a line
// changed since the last write. Lines can be set while the file is written
// (the bridge's relay writers run concurrently); the next Flush takes them.
func (d *Driver) Flush() error {
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return nil
	}
	d.dirty = false
	b := d.stateJSON()
	d.mu.Unlock()
	var err error
	if d.opts.StateFile != "" {
		err = WriteFileAtomic(d.opts.StateFile, b)
	}
	if err != nil {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
		return fmt.Errorf("sim: state file: %w", err)
	}
	return nil
}

// stateKey is an open channel and its key in the state file's JSON object.
type stateKey struct {
	ch   string
	json []byte // the channel as a JSON string, escaped as json.Marshal does
}

// addKey adds channel to the sorted keys. Called with mu held.
func (d *Driver) addKey(channel string) {
	quoted, err := json.Marshal(channel)
	if err != nil { // a string always marshals
		panic(err)
	}
	i, _ := slices.BinarySearchFunc(d.keys, channel, func(k stateKey, ch string) int { return strings.Compare(k.ch, ch) })
	d.keys = slices.Insert(d.keys, i, stateKey{ch: channel, json: quoted})
}

// stateJSON is the state file's content: the bytes json.Marshal(d.levels)
// would write ({"0":true,"1":false}, keys sorted), built from the sorted
// keys. Called with mu held.
func (d *Driver) stateJSON() []byte {
	b := make([]byte, 0, 2+len(d.keys)*12)
	b = append(b, '{')
	for i, k := range d.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k.json...)
		b = append(b, ':')
		b = strconv.AppendBool(b, d.levels[k.ch])
	}
	return append(b, '}')
}

// Levels returns a copy of every output line's level.
func (d *Driver) Levels() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]bool, len(d.levels))
	for k, v := range d.levels {
		out[k] = v
	}
	return out
}

// maxHistory bounds the per-line history kept for glitch tests.
const maxHistory = 64

// History returns the first levels channel was set to (up to 64), in order.
func (d *Driver) History(channel string) []bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]bool(nil), d.history[channel]...)
}

// Close implements drivers.Driver: it stops polling the inputs and faults
// files, fails the writes a fault holds, and
// writes the state file if a line changed.
func (d *Driver) Close() error {
	d.in.close()
	d.faults.close()
	return d.Flush()
}

func (d *Driver) set(ch string, level bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.levels[ch] != level {
		d.dirty = true
	}
	d.levels[ch] = level
	if len(d.history[ch]) < maxHistory {
		d.history[ch] = append(d.history[ch], level)
	}
}

// WriteFileAtomic writes data to a temporary file beside path and renames it
// over path, so readers never see a partial file (atomicfile.WriteUnsynced:
// the simulator's files show state and are rewritten on every relay
// change, so no fsync).
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.WriteUnsynced(path, data, 0o600)
}

type line struct {
	d  *Driver
	ch string
}

func (l *line) Set(level bool) error {
	if err := l.d.faults.wait(l.ch); err != nil {
		return err
	}
	l.d.set(l.ch, level)
	return nil
}

func (l *line) Level() bool {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.levels[l.ch]
}

var (
	_ drivers.Driver      = (*Driver)(nil)
	_ drivers.Flusher     = (*Driver)(nil)
	_ drivers.InputOpener = (*Driver)(nil)
	_ drivers.Output      = (*line)(nil)
)
