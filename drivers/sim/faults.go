package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault is what goes wrong with the writes to one output channel, so that
// tests and the soak can make a board slow, hung or failing. Exactly one
// field is set.
type Fault struct {
	// Delay makes every write take this long before it happens.
	Delay time.Duration
	// Hang blocks every write until the fault is removed (or the driver is
	// closed); the write then happens.
	Hang bool
	// Error makes every write fail with this message; the line keeps its level.
	Error string
}

// faultJSON is one entry of faults_file, decoded strictly.
type faultJSON struct {
	Delay *string `json:"delay"`
	Hang  *bool   `json:"hang"`
	Error *string `json:"error"`
}

// ParseFaults decodes the content of a faults file: a JSON object from
// channel to fault, {"3": {"delay": "1s"}}, {"3": {"hang": true}} or
// {"3": {"error": "i2c: no ack"}}. Empty content or {} is no fault.
func ParseFaults(raw []byte) (map[string]Fault, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]Fault{}, nil
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, errors.New(`want a JSON object from channel to fault, like {"3": {"delay": "1s"}}, {"3": {"hang": true}} or {"3": {"error": "i2c: no ack"}}`)
	}
	chans := make([]string, 0, len(entries))
	for ch := range entries {
		chans = append(chans, ch)
	}
	sort.Strings(chans) // the first bad channel is always the same one
	out := make(map[string]Fault, len(entries))
	for _, ch := range chans {
		f, err := parseFault(entries[ch])
		if err != nil {
			return nil, fmt.Errorf("channel %q: %w", ch, err)
		}
		out[ch] = f
	}
	return out, nil
}

func parseFault(raw json.RawMessage) (Fault, error) {
	const want = `want exactly one of {"delay": "1s"}, {"hang": true} or {"error": "message"}`
	var fj faultJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fj); err != nil {
		return Fault{}, fmt.Errorf("%v: %s", err, want)
	}
	var f Fault
	n := 0
	if fj.Delay != nil {
		n++
		d, err := time.ParseDuration(*fj.Delay)
		if err != nil || d <= 0 {
			return Fault{}, fmt.Errorf("delay %q: want a positive duration like \"1s\" or \"250ms\"", *fj.Delay)
		}
		f.Delay = d
	}
	if fj.Hang != nil {
		n++
		if !*fj.Hang {
			return Fault{}, errors.New(`hang false: leave the channel out for no fault, or write {"hang": true}`)
		}
		f.Hang = true
	}
	if fj.Error != nil {
		n++
		if strings.TrimSpace(*fj.Error) == "" {
			return Fault{}, errors.New("error \"\": want the message the writes fail with")
		}
		f.Error = *fj.Error
	}
	if n != 1 {
		return Fault{}, errors.New(want)
	}
	return f, nil
}

// ReadFaultsFile reads and checks a faults file; a missing file is no fault.
func ReadFaultsFile(path string) (map[string]Fault, []byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Fault{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sim: faults_file %s: %w", path, err)
	}
	f, err := ParseFaults(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: faults_file %s: %w", path, err)
	}
	return f, raw, nil
}

// faults are the driver's output faults, from SetFault or faults_file.
type faults struct {
	file string

	mu      sync.Mutex
	byCh    map[string]Fault
	raw     []byte        // the file content in force
	lastErr string        // the last bad content's error, logged once
	changed chan struct{} // closed and replaced on every change
	closed  bool

	stop, done chan struct{}
	stopOnce   sync.Once
	logf       func(msg string, args ...any)
}

func (fs *faults) init(file string, logf func(string, ...any)) {
	fs.file, fs.logf = file, logf
	fs.byCh = map[string]Fault{}
	fs.changed = make(chan struct{})
	fs.stop, fs.done = make(chan struct{}), make(chan struct{})
	if file == "" {
		close(fs.done)
		return
	}
	fs.poll()
	go fs.run()
}

func (fs *faults) run() {
	defer close(fs.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-fs.stop:
			return
		case <-t.C:
			fs.poll()
		}
	}
}

// poll reads the faults file and takes it if it changed and is valid. A bad
// file changes nothing: the faults in force stay.
func (fs *faults) poll() {
	byCh, raw, err := ReadFaultsFile(fs.file)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err != nil {
		if err.Error() != fs.lastErr {
			fs.lastErr = err.Error()
			fs.logf("sim faults file refused: the faults in force stay", "err", err)
		}
		return
	}
	fs.lastErr = ""
	if bytes.Equal(raw, fs.raw) {
		return
	}
	fs.raw = raw
	fs.setLocked(byCh)
}

func (fs *faults) setLocked(byCh map[string]Fault) {
	fs.byCh = byCh
	close(fs.changed)
	fs.changed = make(chan struct{})
}

func (fs *faults) set(ch string, f *Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	byCh := make(map[string]Fault, len(fs.byCh)+1)
	for k, v := range fs.byCh {
		byCh[k] = v
	}
	if f == nil {
		delete(byCh, ch)
	} else {
		byCh[ch] = *f
	}
	fs.setLocked(byCh)
}

// wait applies ch's fault to one write: it returns once the write may
// happen, or the error the write fails with.
func (fs *faults) wait(ch string) error {
	for {
		fs.mu.Lock()
		f, ok := fs.byCh[ch]
		changed, closed := fs.changed, fs.closed
		fs.mu.Unlock()
		switch {
		case closed:
			return errors.New("sim: driver closed")
		case !ok:
			return nil
		case f.Error != "":
			return fmt.Errorf("sim: channel %q: %s", ch, f.Error)
		case f.Delay > 0:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
				return nil
			case <-fs.stop:
				t.Stop()
				return errors.New("sim: driver closed")
			}
		}
		select { // hang: until the fault changes
		case <-changed:
		case <-fs.stop:
			return errors.New("sim: driver closed")
		}
	}
}

func (fs *faults) close() {
	fs.mu.Lock()
	fs.closed = true
	fs.mu.Unlock()
	fs.stopOnce.Do(func() { close(fs.stop) })
	<-fs.done
}

func (fs *faults) get(ch string) Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.byCh[ch]
}
