package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxSize  = 10_000_000 // bytes (10MB)
	DefaultMaxFiles = 5
	// QueueSize is how many events may wait for the disk before new ones
	// are dropped (and counted).
	QueueSize = 4096
)

// Options configure a Writer.
type Options struct {
	// Path is the current file; rotated files are Path.1 (newest) to
	// Path.MaxFiles (oldest).
	Path string
	// MaxSize rotates the current file before a write would take it past
	// this many bytes (0: DefaultMaxSize).
	MaxSize int64
	// MaxFiles is how many rotated files are kept (0: DefaultMaxFiles).
	MaxFiles int
	// Log receives rotation and write errors (nil: slog.Default()).
	Log *slog.Logger
	// OnDrop, when set, is called for every event that could not be written
	// (queue full, or the write itself failed).
	OnDrop func()
}

// Writer appends events to the audit file on its own goroutine. Safety
// records (Safety) go to Path, the rest (commands) to CommandsPath(Path):
// each set of files is rotated on its own, so no number of commands, junk or
// not, can rotate a safety record out. Safety records also have their own
// queue, written first.
type Writer struct {
	r       *rotator // safety records
	cr      *rotator // commands
	log     *slog.Logger
	onDrop  func()
	queue   chan Event // safety records
	cqueue  chan Event // commands
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	dropLog atomic.Bool // a drop was logged and no write has succeeded since
}

// Open opens (creating it and its directory if needed) the audit file and
// starts the writer.
func Open(opts Options) (*Writer, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	r, err := openRotator(opts)
	if err != nil {
		return nil, err
	}
	copts := opts
	copts.Path = CommandsPath(opts.Path)
	cr, err := openRotator(copts)
	if err != nil {
		r.close()
		return nil, err
	}
	w := &Writer{
		r:      r,
		cr:     cr,
		log:    opts.Log,
		onDrop: opts.OnDrop,
		queue:  make(chan Event, QueueSize),
		cqueue: make(chan Event, QueueSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.run()
	return w, nil
}

// Write queues e without blocking. It reports false when e was dropped
// because the queue is full or the writer is closed.
func (w *Writer) Write(e Event) bool {
	if w.closed.Load() {
		w.dropped("writer closed")
		return false
	}
	q := w.cqueue
	if Safety(e) {
		q = w.queue
	}
	select {
	case q <- e:
		return true
	default:
		w.dropped("queue full: the disk is too slow or hung")
		return false
	}
}

func (w *Writer) dropped(why string) {
	if w.onDrop != nil {
		w.onDrop()
	}
	if !w.dropLog.Swap(true) {
		w.log.Error("audit event not written to the file", "file", w.r.path, "why", why)
	}
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		select { // safety records first
		case e := <-w.queue:
			w.write(w.r, e)
			continue
		default:
		}
		select {
		case e := <-w.queue:
			w.write(w.r, e)
		case e := <-w.cqueue:
			w.write(w.cr, e)
		case <-w.stop:
			w.drain()
			return
		}
	}
}

func (w *Writer) drain() {
	for {
		select {
		case e := <-w.queue:
			w.write(w.r, e)
		case e := <-w.cqueue:
			w.write(w.cr, e)
		default:
			return
		}
	}
}

func (w *Writer) write(r *rotator, e Event) {
	line, err := json.Marshal(e)
	if err == nil {
		err = r.append(append(line, '\n'))
	}
	if err != nil {
		w.dropped(err.Error())
		return
	}
	w.dropLog.Store(false)
}

// Close writes what is queued, waiting at most timeout for the disk, and
// closes the file. Later writes are dropped.
func (w *Writer) Close(timeout time.Duration) error {
	var err error
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.stop)
		select {
		case <-w.done:
			err = errors.Join(w.r.close(), w.cr.close())
		case <-time.After(timeout):
			err = fmt.Errorf("audit: %s: writer still busy after %v; queued events may be lost", w.r.path, timeout)
		}
	})
	return err
}

// rotator is the file itself: append-only, rotated by size. Only the
// Writer's goroutine uses it.
type rotator struct {
	path     string
	maxSize  int64
	maxFiles int
	log      *slog.Logger

	f    *os.File
	size int64
	// displaced: the current file was renamed to path.1 but no new file
	// could be opened at path; writes go on into path.1 until one can.
	displaced bool
	// retryAt: after a failed rotation, the next try waits until the file
	// reached this size, so that a lasting failure is not retried (and
	// logged) on every write.
	retryAt int64
	failing bool

	// File operations, replaced in tests to make rotation fail.
	rename   func(oldpath, newpath string) error
	openFile func(name string) (*os.File, error)
}

func openAppend(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

func openRotator(opts Options) (*rotator, error) {
	if opts.Path == "" {
		return nil, errors.New("audit: no file given")
	}
	r := &rotator{
		path:     opts.Path,
		maxSize:  opts.MaxSize,
		maxFiles: opts.MaxFiles,
		log:      opts.Log,
		rename:   os.Rename,
		openFile: openAppend,
	}
	if r.maxSize <= 0 {
		r.maxSize = DefaultMaxSize
	}
	if r.maxFiles <= 0 {
		r.maxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := r.openFile(r.path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	r.f, r.size = f, st.Size()
	return r, nil
}

// append writes one line. When the line would take the file past maxSize the
// file is rotated first; if rotation fails, the error is logged and the line
// is written to the current file all the same: an event is never lost to a
// rotation.
func (r *rotator) append(line []byte) error {
	if r.size > 0 && r.size+int64(len(line)) > r.maxSize && r.size >= r.retryAt {
		if err := r.rotate(); err != nil {
			r.retryAt = r.size + max(r.maxSize/8, 1)
			if !r.failing {
				r.log.Error("audit file rotation failed; writing on to the current file", "file", r.path, "err", err)
			}
			r.failing = true
		} else if r.failing {
			r.log.Info("audit file rotation works again", "file", r.path)
			r.failing, r.retryAt = false, 0
		}
	}
	n, err := r.f.Write(line)
	r.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", r.path, err)
	}
	return nil
}

func (r *rotator) numbered(i int) string { return r.path + "." + strconv.Itoa(i) }

// rotate shifts path.1 … path.(N-1) up by one (the oldest, path.N, is
// overwritten), renames path to path.1 and opens a new path. Until a new file
// is open the current one stays open and in use, wherever it now is.
func (r *rotator) rotate() error {
	if !r.displaced {
		for i := r.maxFiles - 1; i >= 1; i-- {
			if err := r.rename(r.numbered(i), r.numbered(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := r.rename(r.path, r.numbered(1)); err != nil {
			return err
		}
		r.displaced = true
	}
	f, err := r.openFile(r.path)
	if err != nil {
		return err
	}
	if err := r.f.Close(); err != nil {
		r.log.Warn("closing rotated audit file", "file", r.numbered(1), "err", err)
	}
	r.f, r.size, r.displaced = f, 0, false
	return nil
}

func (r *rotator) close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
