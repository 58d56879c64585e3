package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// relayVersion is one version of the sim driver's state file.
type relayVersion struct {
	Seq    int
	Start  time.Time       // taken before the file was read: the content was there at some moment in [Start, At]
	At     time.Time       // taken after the file had been read: an upper bound
	Levels map[string]bool // channel -> level (true = coil on)
}

// relayWatcher follows the sim driver's state file, which the driver
// replaces atomically (write a temporary file, rename it over the old one)
// each time the bridge flushes relay changes.
//
// The default mode uses inotify on the directory: the kernel queues an
// IN_MOVED_TO event at the rename and the watcher, blocked in the netpoller,
// wakes, reads and parses the file, and only then takes the time. A figure
// is therefore an upper bound on when the relay was written (by the
// watcher's wake-up and read, tens of microseconds), and watching costs no
// CPU while nothing changes, which matters on a 2-core machine shared with
// the bridge and the broker. The "poll" mode reads the file every
// pollEvery instead, as a cross-check (it adds up to pollEvery to each
// figure and burns CPU). File mtimes are not used: they come from the
// kernel's coarse clock (one jiffy, 1-10 ms).
type relayWatcher struct {
	path string
	stop chan struct{}
	done chan struct{}
	file *os.File // inotify, nil in poll mode
	hook func(relayVersion)

	mu      sync.Mutex
	history []relayVersion // last maxHistory versions
	seq     int
	last    []byte
	changed chan struct{}
	err     error
}

const (
	maxHistory = 4096
	pollEvery  = 250 * time.Microsecond
)

// watchRelays starts watching path (which may not exist yet). mode is
// "inotify" or "poll"; hook, if set, is called (on the watcher goroutine)
// with every new version.
func watchRelays(path, mode string, hook func(relayVersion)) (*relayWatcher, error) {
	w := &relayWatcher{path: path, stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{}), hook: hook}
	switch mode {
	case "inotify":
		fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("inotify: %w", err)
		}
		if _, err := syscall.InotifyAddWatch(fd, filepath.Dir(path), syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
			syscall.Close(fd)
			return nil, fmt.Errorf("inotify: watch %s: %w", filepath.Dir(path), err)
		}
		// A non-blocking fd goes to the netpoller: Close wakes the reader.
		w.file = os.NewFile(uintptr(fd), "inotify")
		w.load() // the file may exist already
		go w.inotifyLoop()
	case "poll":
		go w.pollLoop()
	default:
		return nil, fmt.Errorf("unknown watch mode %q (inotify or poll)", mode)
	}
	return w, nil
}

func (w *relayWatcher) close() {
	close(w.stop)
	if w.file != nil {
		w.file.Close()
	}
	<-w.done
}

func (w *relayWatcher) inotifyLoop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	base := filepath.Base(w.path)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			select {
			case <-w.stop:
			default:
				w.fail(fmt.Errorf("inotify read: %w", err))
			}
			return
		}
		hit := false
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			name = bytes.TrimRight(name, "\x00")
			if string(name) == base {
				hit = true
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
		if hit {
			w.load()
		}
	}
}

func (w *relayWatcher) pollLoop() {
	defer close(w.done)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.load()
		}
	}
}

// load reads the file and records it as a new version if it changed.
func (w *relayWatcher) load() {
	start := time.Now()
	b, err := os.ReadFile(w.path)
	at := time.Now()
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			w.fail(err)
		}
		return
	}
	w.mu.Lock()
	if bytes.Equal(b, w.last) {
		w.mu.Unlock()
		return
	}
	var levels map[string]bool
	if err := json.Unmarshal(b, &levels); err != nil {
		w.mu.Unlock()
		w.fail(fmt.Errorf("state file %s: %w (a partial write?)", w.path, err))
		return
	}
	w.last = b
	w.seq++
	v := relayVersion{Seq: w.seq, Start: start, At: at, Levels: levels}
	if len(w.history) == maxHistory {
		w.history = append(w.history[:0], w.history[maxHistory/2:]...)
	}
	w.history = append(w.history, v)
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	if w.hook != nil {
		w.hook(v)
	}
}

func (w *relayWatcher) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// current returns the latest version (Seq 0 before the file exists).
func (w *relayWatcher) current() relayVersion {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.history) == 0 {
		return relayVersion{}
	}
	return w.history[len(w.history)-1]
}

// waitFor returns the first version after seq for which pred holds.
func (w *relayWatcher) waitFor(after int, pred func(map[string]bool) bool, timeout time.Duration) (relayVersion, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return relayVersion{}, err
		}
		for _, v := range w.history {
			if v.Seq > after && pred(v.Levels) {
				w.mu.Unlock()
				return v, nil
			}
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			cur := w.current()
			return relayVersion{}, fmt.Errorf("relays not as expected within %v (last %v)", timeout, cur.Levels)
		}
	}
}

// since returns every version after seq, in order. It fails when some of
// them were already dropped from the history.
func (w *relayWatcher) since(seq int) ([]relayVersion, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.history) > 0 && w.history[0].Seq > seq+1 {
		return nil, fmt.Errorf("relay history starts at version %d, after %d", w.history[0].Seq, seq+1)
	}
	var out []relayVersion
	for _, v := range w.history {
		if v.Seq > seq {
			out = append(out, v)
		}
	}
	return out, nil
}

// readRelays reads the state file now: its content was there at some moment
// between start and end.
func readRelays(path string) (levels map[string]bool, start, end time.Time, err error) {
	start = time.Now()
	b, err := os.ReadFile(path)
	end = time.Now()
	if err != nil {
		return nil, start, end, err
	}
	if err := json.Unmarshal(b, &levels); err != nil {
		return nil, start, end, fmt.Errorf("state file %s: %w", path, err)
	}
	return levels, start, end, nil
}

// allLevel returns a predicate: every channel in chans is at level.
func allLevel(chans []string, level bool) func(map[string]bool) bool {
	return func(m map[string]bool) bool {
		for _, ch := range chans {
			v, ok := m[ch]
			if !ok || v != level {
				return false
			}
		}
		return true
	}
}
