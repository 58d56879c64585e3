// Package statefile keeps the small records that must survive a restart and
// a power cut (safety rule R23) in one directory, bridge.state_dir: the
// fire release latch, lockdown, the battery budget, code lockouts, the last
// release drill.
//
// A record is one file named after it, replaced whole and durably by
// internal/atomicfile, holding its value and a checksum of its name and
// value (alarm_latched, latched):
//
//	1
//	crc32c:c96e56de
//
// Load tells an intact record from every other case (missing, empty,
// NUL-filled, truncated, garbage, another record's file, an older format)
// and returns the caller's safe value for all of those, with the reason.
// Only a record that was never written is not damage: the directory keeps
// an index (.records) of the records it ever held, and a record missing
// from both the directory and the index starts at the caller's initial
// value (a new install is not latched). A record the index names but the
// directory lacks, or any record when the index itself is damaged, reads
// as safe.
//
// A Dir is safe for use by one goroutine at a time.
package statefile

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/doorbridge/doorbridge/internal/atomicfile"
)

// ErrDamaged is the error of a record that is present but not intact.
var ErrDamaged = errors.New("damaged")

// indexName is the record listing every record the directory ever held.
const indexName = ".records"

// perm is every record's mode: state is the bridge's alone.
const perm = 0o600

// castagnoli is built on first use, not at package init: building it is
// part of the start-up that stands before the relays' off writes, and no
// record is read or written before they are done.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Dir is a directory of records.
type Dir struct {
	path string
	// broken is why the directory cannot be used at all (nil when it can).
	broken error
	// known lists the records ever written here. When the index is damaged
	// (indexBad) it holds what is known instead: the intact records present
	// and every record loaded since, and the next Write rewrites the index.
	known    []string
	indexBad bool
}

// Open opens the record directory at path, creating it (mode 0700) when
// missing. It always returns a usable Dir. When the directory cannot be
// created the error says so and every Load returns the safe value. When its
// index is damaged the error says so too: intact records still load, but a
// missing one reads as safe, and the next Write repairs the index. Load
// every record once at start, before writing any.
func Open(path string) (*Dir, error) {
	d := &Dir{path: path}
	if path == "" {
		d.broken = errors.New("statefile: no directory")
		return d, d.broken
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		d.broken = fmt.Errorf("statefile: %w", err)
		return d, d.broken
	}
	v, err := d.read(indexName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return d, nil // nothing was ever written here: a new directory
	case err == nil:
		d.known = strings.Fields(string(v))
		return d, nil
	}
	d.indexBad = true
	d.known = d.intactRecords()
	return d, fmt.Errorf("statefile: index: %w; a missing record reads as its safe value", err)
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Load returns the value of record name. For an intact record that is its
// value and a nil error. For a record never written it is initial, also
// with a nil error (initial is then written, so that from now on its loss
// is seen). In every other case it is safe, with an error that says why:
// the caller must act on safe and report the error.
func (d *Dir) Load(name string, initial, safe []byte) ([]byte, error) {
	if err := checkName(name); err != nil {
		return safe, err
	}
	if d.broken != nil {
		return safe, d.broken
	}
	v, err := d.read(name)
	switch {
	case err == nil:
		return v, nil
	case !errors.Is(err, fs.ErrNotExist):
		return safe, fmt.Errorf("statefile: %w", err)
	case d.indexBad:
		d.known = append(d.known, name) // its loss stays visible once the index is repaired
		return safe, fmt.Errorf("statefile: %s: missing, and the index cannot tell whether it was written before", d.file(name))
	case slices.Contains(d.known, name):
		return safe, fmt.Errorf("statefile: %s: %w: written before, now missing", d.file(name), ErrDamaged)
	}
	if werr := d.Write(name, initial); werr != nil {
		return safe, werr
	}
	return initial, nil
}

// Write replaces record name with value, durably: when it returns nil, the
// value survives a power cut. A new record enters the index after it was
// written: a crash in between leaves it intact, not missing.
func (d *Dir) Write(name string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := atomicfile.Write(d.file(name), encode(name, value), perm); err != nil {
		return fmt.Errorf("statefile: record %s: %w", name, err)
	}
	if slices.Contains(d.known, name) && !d.indexBad {
		return nil
	}
	known := slices.Clone(d.known)
	if !slices.Contains(known, name) {
		known = append(known, name)
	}
	slices.Sort(known)
	known = slices.Compact(known)
	if err := atomicfile.Write(d.file(indexName), encode(indexName, []byte(strings.Join(known, "\n"))), perm); err != nil {
		return fmt.Errorf("statefile: index: %w", err)
	}
	d.known, d.indexBad = known, false
	return nil
}

// Known reports whether the index lists record name: it was written once.
func (d *Dir) Known(name string) bool { return slices.Contains(d.known, name) }

// Remove deletes record name, durably, when the index knows it: it then
// reads as its safe value (written once, now missing). It is the fallback
// of a Write that failed: a stale intact value must not outlive it.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !slices.Contains(d.known, name) {
		return fmt.Errorf("statefile: record %s: not in the index: a missing one would read as never written", name)
	}
	if err := os.Remove(d.file(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statefile: record %s: %w", name, err)
	}
	dir, err := os.Open(d.path)
	if err != nil {
		return fmt.Errorf("statefile: record %s: %w", name, err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("statefile: record %s: %w", name, err)
	}
	return nil
}

// intactRecords lists the intact records in the directory.
func (d *Dir) intactRecords() []string {
	entries, _ := os.ReadDir(d.path)
	var out []string
	for _, e := range entries {
		if checkName(e.Name()) == nil && e.Type().IsRegular() {
			if _, err := d.read(e.Name()); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

func (d *Dir) file(name string) string { return filepath.Join(d.path, name) }

// read returns a record's value, fs.ErrNotExist when there is no file,
// ErrDamaged when it is not intact.
func (d *Dir) read(name string) ([]byte, error) {
	data, err := os.ReadFile(d.file(name))
	if err != nil {
		return nil, err
	}
	v, ok := decode(name, data)
	if !ok {
		return nil, fmt.Errorf("%s: %w (%d bytes, %q)", d.file(name), ErrDamaged, len(data), excerpt(data))
	}
	return v, nil
}

// trailer is the last line of a record: "crc32c:" and 8 hex digits.
const (
	trailerPrefix = "\ncrc32c:"
	trailerLen    = len(trailerPrefix) + 8 + 1
)

func sum(name string, value []byte) uint32 {
	h := crc32.New(castagnoli())
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(value)
	return h.Sum32()
}

func encode(name string, value []byte) []byte {
	return fmt.Appendf(slices.Clip(value), "%s%08x\n", trailerPrefix, sum(name, value))
}

func decode(name string, data []byte) ([]byte, bool) {
	if len(data) < trailerLen {
		return nil, false
	}
	value, trailer := data[:len(data)-trailerLen], string(data[len(data)-trailerLen:])
	want := fmt.Sprintf("%s%08x\n", trailerPrefix, sum(name, value))
	return value, trailer == want
}

// checkName refuses names that are not a plain file name of the directory;
// names starting with a dot are the index's and atomicfile's temporary files.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\\x00 \n") {
		return fmt.Errorf("statefile: invalid record name %q", name)
	}
	return nil
}

func excerpt(b []byte) string {
	if len(b) > 24 {
		b = b[:24]
	}
	return string(b)
}
