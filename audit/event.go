// Package audit keeps doorbridge's audit trail on disk: an append-only
// JSON-lines file rotated by size with a bounded number of old files
// (R20: every output change is logged with a monotonic sequence, cause and
// origin).
//
// The bridge numbers the events; this package only stores and reads them.
// Writes go through a bounded queue drained by the Writer's own goroutine,
// so a slow or failing disk never holds up the control loop.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event is one entry of the audit trail: every change of lock power, every
// command, every hazard raised and cleared.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // relay, command, hazard, alarm, latch, reset, driver, drill, bridge
	Door      string    `json:"door,omitempty"`
	Hazard    string    `json:"hazard,omitempty"`
	Energized *bool     `json:"energized,omitempty"`
	Cause     string    `json:"cause,omitempty"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
	Origin    string    `json:"origin,omitempty"`
}

// Safety reports whether e is a safety record: a change of lock power, an
// alarm, a hazard, the latch, a reset, lockdown, a code lockout, a drill,
// the bridge's start and stop... everything but door commands and refused
// or rejected requests. Those are the records anyone who may publish a
// command can produce at will; they go to their own files (CommandsPath),
// so that however many there are they never rotate a safety record out.
// A lockdown command is a safety record when it is accepted and changes
// the lockdown; one that changes nothing has the outcome "unchanged".
func Safety(e Event) bool {
	switch {
	case e.Kind == "command":
		return e.Door == "lockdown" && e.Outcome == "accepted"
	case e.Outcome == "rejected" || e.Outcome == "refused":
		return false
	}
	return true
}

// CommandsPath is where the audit log at path keeps the events that are
// not safety records, rotated like path (CommandsPath(path).1 ...).
func CommandsPath(path string) string { return path + ".commands" }

// Files returns the files of the audit log at path, oldest first: the
// rotated files path.N … path.1, then path itself. Files that do not exist
// are left out; numbered files beyond the configured max_files (left from an
// earlier setting) are included.
func Files(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	type numbered struct {
		n    int
		name string
	}
	var rotated []numbered
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err == nil && n > 0 {
			rotated = append(rotated, numbered{n, m})
		}
	}
	slices.SortFunc(rotated, func(a, b numbered) int { return b.n - a.n })
	var out []string
	for _, r := range rotated {
		out = append(out, r.name)
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return out, nil
}

// globEscape quotes the glob metacharacters of a literal path.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Decode reads JSON lines from r and calls fn for every event. Lines that are
// not events (a line cut short by a crash, say) are skipped and counted in
// bad.
func Decode(r io.Reader, fn func(Event)) (bad int, err error) {
	return decode(r, func(e Event) bool { fn(e); return true })
}

// decode is Decode that stops when fn returns false.
func decode(r io.Reader, fn func(Event) bool) (bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var e Event
		if json.Unmarshal(line, &e) != nil || e.Seq == 0 {
			bad++
			continue
		}
		if !fn(e) {
			break
		}
	}
	return bad, sc.Err()
}

// ReadAll reads every event of the audit log at path, safety records and
// commands (CommandsPath) merged in sequence order.
func ReadAll(path string, fn func(file string, e Event)) (bad int, err error) {
	safety, err := Files(path)
	if err != nil {
		return 0, err
	}
	commands, err := Files(CommandsPath(path))
	if err != nil {
		return 0, err
	}
	var badS, badC int
	var errS, errC error
	nextS, stopS := iter.Pull2(eventsOf(safety, &badS, &errS))
	defer stopS()
	nextC, stopC := iter.Pull2(eventsOf(commands, &badC, &errC))
	defer stopC()
	fs, es, okS := nextS()
	fc, ec, okC := nextC()
	for okS || okC {
		if okS && (!okC || es.Seq <= ec.Seq) {
			fn(fs, es)
			fs, es, okS = nextS()
		} else {
			fn(fc, ec)
			fc, ec, okC = nextC()
		}
	}
	return badS + badC, errors.Join(errS, errC)
}

// eventsOf yields the events of files in order, counting bad lines in *bad
// and stopping at the first error, kept in *errp.
func eventsOf(files []string, bad *int, errp *error) iter.Seq2[string, Event] {
	return func(yield func(string, Event) bool) {
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				*errp = fmt.Errorf("audit: %w", err)
				return
			}
			more := true
			n, err := decode(f, func(e Event) bool { more = yield(name, e); return more })
			f.Close()
			*bad += n
			if err != nil {
				*errp = fmt.Errorf("audit: %s: %w", name, err)
				return
			}
			if !more {
				return
			}
		}
	}
}

// LastSeq returns the sequence number of the last event in the audit log at
// path (0 when there is none), so that a restarted bridge continues the
// sequence instead of starting again at 1.
func LastSeq(path string) uint64 {
	return max(lastSeqIn(path), lastSeqIn(CommandsPath(path)))
}

func lastSeqIn(path string) uint64 {
	files, err := Files(path)
	if err != nil {
		return 0
	}
	for i := len(files) - 1; i >= 0; i-- {
		if seq := lastSeqOf(files[i]); seq > 0 {
			return seq
		}
	}
	return 0
}

// lastSeqOf reads the tail of one file for its last complete event.
func lastSeqOf(name string) uint64 {
	f, err := os.Open(name)
	if err != nil {
		return 0
	}
	defer f.Close()
	const tail = 64 * 1024
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return 0
	}
	lines := strings.Split(string(buf), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var e Event
		if json.Unmarshal([]byte(lines[i]), &e) == nil && e.Seq > 0 {
			return e.Seq
		}
	}
	return 0
}
