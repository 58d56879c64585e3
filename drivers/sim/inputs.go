package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/doorbridge/doorbridge/drivers"
)

// PollInterval is how often the inputs file is checked for changes.
const PollInterval = 20 * time.Millisecond

// rereadEvery forces a read of the inputs file every so many polls even when
// its size, time and inode look unchanged: a file system with coarse
// timestamps may hide a quick same-size edit from stat.
const rereadEvery = 25

// badPollsAllowed is how many polls in a row may find the inputs file
// unreadable or half-written before its inputs turn unknown. A writer that
// does not rename atomically is then not mistaken for a broken file.
const badPollsAllowed = 5

// inputs are the driver's input lines. They have their own lock: the
// poller never waits on relay writes.
type inputs struct {
	file string

	mu      sync.Mutex
	levels  map[string]bool  // known levels: from the file, or SetInput
	forced  map[string]error // SetInputError: Read fails with this
	opened  map[string]bool
	fileErr error // the inputs file cannot be used: every input is unknown
	stat    os.FileInfo
	raw     []byte
	bad     int // polls in a row that failed
	polls   int
	// created: the inputs file was missing at start and create_inputs_file
	// is set, so the driver writes it with every input it opens at low.
	created bool

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (in *inputs) init(file string, create bool) {
	in.file = file
	in.levels = map[string]bool{}
	in.forced = map[string]error{}
	in.opened = map[string]bool{}
	in.stop = make(chan struct{})
	in.done = make(chan struct{})
	if file == "" {
		close(in.done)
		return
	}
	if err := in.poll(true); create && errors.Is(err, os.ErrNotExist) {
		in.created = true
	} else if err != nil {
		// Unreadable at start: unknown at once, no grace.
		in.fileErr = err
	}
	go in.run()
}

func (in *inputs) run() {
	defer close(in.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			return
		case <-t.C:
			in.poll(false)
		}
	}
}

func (in *inputs) close() {
	in.stopOnce.Do(func() { close(in.stop) })
	<-in.done
}

// poll reads the inputs file if it changed (or always, with force) and
// takes its levels. It returns the error of a failed read.
func (in *inputs) poll(force bool) error {
	in.mu.Lock()
	prev, failing := in.stat, in.bad > 0
	in.polls++
	force = force || failing || in.polls%rereadEvery == 0
	in.mu.Unlock()

	st, err := os.Stat(in.file)
	if err == nil && !force && prev != nil && os.SameFile(prev, st) &&
		st.Size() == prev.Size() && st.ModTime().Equal(prev.ModTime()) {
		return nil
	}
	var raw []byte
	var levels map[string]bool
	if err == nil {
		raw, err = os.ReadFile(in.file)
	}
	if err == nil {
		err = json.Unmarshal(raw, &levels)
		if err == nil && levels == nil {
			err = errors.New("want a JSON object of channel to level, like {\"5\": true}")
		}
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil && in.created && in.stat == nil {
		return err // not written yet: no input is open
	}
	if err != nil {
		in.bad++
		if in.bad >= badPollsAllowed {
			in.fileErr = err
		}
		return err
	}
	in.bad, in.fileErr, in.stat = 0, nil, st
	if !bytes.Equal(raw, in.raw) {
		in.raw, in.levels = raw, levels
	}
	return nil
}

func (in *inputs) isOpen(ch string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.opened[ch]
}

func (in *inputs) read(ch string) (bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.forced[ch]; err != nil {
		return false, fmt.Errorf("sim: input %q: %w", ch, err)
	}
	if in.fileErr != nil {
		return false, fmt.Errorf("sim: input %q: inputs file %s: %w", ch, in.file, in.fileErr)
	}
	v, ok := in.levels[ch]
	if !ok && in.file != "" {
		return false, fmt.Errorf("sim: input %q: not listed in inputs file %s", ch, in.file)
	}
	return v, nil
}

// OpenInput implements drivers.InputOpener. Pull is accepted and ignored:
// a simulated line has no bias. A channel is an output or an input, not
// both.
func (d *Driver) OpenInput(channel string, opts drivers.InputOptions) (drivers.Input, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, busy := d.levels[channel]; busy {
		return nil, fmt.Errorf("sim: channel %q: %w", channel, drivers.ErrChannelBusy)
	}
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	if d.in.opened[channel] {
		return nil, fmt.Errorf("sim: channel %q: %w", channel, drivers.ErrChannelBusy)
	}
	d.in.opened[channel] = true
	if d.in.created {
		if err := d.in.addLowLocked(channel); err != nil {
			return nil, fmt.Errorf("sim: creating inputs file %s: %w", d.in.file, err)
		}
	}
	return &input{in: &d.in, ch: channel}, nil
}

// SetInput sets an input's level (true = high), as if the line changed.
// Tests call it. With an inputs file, the level lasts until the file next
// changes.
func (d *Driver) SetInput(channel string, level bool) {
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	d.in.levels[channel] = level
}

// SetInputError makes every Read of channel fail with err until it is
// called again with nil: a broken cable, a board that stopped answering.
func (d *Driver) SetInputError(channel string, err error) {
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	if err == nil {
		delete(d.in.forced, channel)
		return
	}
	d.in.forced[channel] = err
}

type input struct {
	in *inputs
	ch string
}

// Cached implements drivers.Cached: Read never waits on a board.
func (i *input) Cached() {}

// Read implements drivers.Input.
func (i *input) Read() (bool, error) { return i.in.read(i.ch) }

var _ drivers.Input = (*input)(nil)

// addLowLocked adds channel at low to the inputs file the driver created,
// and takes the file as read.
func (in *inputs) addLowLocked(channel string) error {
	levels := map[string]bool{}
	for ch, v := range in.levels {
		levels[ch] = v
	}
	levels[channel] = false
	raw, err := json.Marshal(levels)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(in.file, raw); err != nil {
		return err
	}
	st, err := os.Stat(in.file)
	if err != nil {
		return err
	}
	in.levels, in.raw, in.stat, in.bad, in.fileErr = levels, raw, st, 0, nil
	return nil
}
